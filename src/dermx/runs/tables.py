"""The per-row tables of a benchmark run: ``items.csv``, ``baselines.csv`` and ``images.csv``.

``items``: one row per scored (model, fold, image, map kind, target, reference) with the flags
``present``, ``predicted``, ``correct``, ``miss`` and one column per score; ``baselines``: each
baseline map's scores on the (image, reference) pairs the model rows use; ``images``: one row per
(model, fold, image) with the probabilities, the prediction, the patient and the strata columns;
``ceiling``: each rater scored as the models are, against the other raters (model, fold, image, kind,
reference, rater, scores); ``raters``: each rater's answers on the test images (image, rater,
diagnosis, ``sel:<characteristic>`` for each characteristic outlined); ``interventions`` (only when asked
for, ``dermx evaluate --interventions``): one row per (model, order, k) of the intervention curves
(:func:`dermx.evaluate.benchmark.interventions.curve_table`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dermx.atomic import atomic_write
from dermx.runs.layout import TABLES


def write_tables(out: str | Path, tables: dict[str, pd.DataFrame], *, append: bool = False) -> list[Path]:
    """Write each table of :data:`~dermx.runs.layout.TABLES` present in ``tables`` as ``<name>.csv``,
    whole and atomically (``append``: add the rows to the file, which must then exist with the same
    columns)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in TABLES:
        if name not in tables:
            continue
        path = out / f"{name}.csv"
        if append:  # appending rows a finished model adds to a table already written whole
            tables[name].to_csv(path, mode="a", header=False, index=False)
        else:
            with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
                tables[name].to_csv(handle, index=False)
        written.append(path)
    return written


def read_tables(run_dir: str | Path) -> dict[str, pd.DataFrame]:
    """The tables of ``run_dir`` that exist, by name."""
    run_dir = Path(run_dir)
    return {name: pd.read_csv(run_dir / f"{name}.csv") for name in TABLES if (run_dir / f"{name}.csv").is_file()}


def image_dice(items: pd.DataFrame) -> pd.Series:
    """``(model, stem) →`` the image's mean characteristic-map Dice over the pairs the experts outlined."""
    present = items[(items["kind"] == "characteristic") & items["present"].astype(bool)]
    return present.groupby(["model", "stem"])["dice"].mean()
