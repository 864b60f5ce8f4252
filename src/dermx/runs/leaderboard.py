"""``leaderboard.json`` (everything), ``leaderboard.csv`` (its finite rows) and ``leaderboard_examples.npz``.

The JSON document holds ``rows`` (one per (model, method): the metrics, each with ``_low`` and
``_high``, a ``null`` where undefined), ``excluded`` (cells that could not be computed, with the
reason), ``undefined`` (a metric undefined on every image of a row, with the reason), ``notes``,
``directions`` (higher or lower is better), and from ``dermx evaluate`` its ``config``, ``protocol``,
``deviations``, ``mprt_curves`` and ``groups`` (each row's deletion AUC per group of images), from
``dermx leaderboard --out`` the ``runs`` combined.
``leaderboard.csv`` holds the rows whose every cell is a number, with its header even when none is.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dermx.atomic import atomic_write
from dermx.jsonio import write_json
from dermx.runs.layout import (
    LEADERBOARD_CSV,
    LEADERBOARD_EXAMPLES,
    LEADERBOARD_JSON,
    SUMMARY,
    RunFolderError,
    check_schema,
    stamped,
)


def undefined_value(value: Any) -> bool:
    """A row's number that is missing or not finite (strings, the row's names, are never undefined)."""
    return not isinstance(value, str) and (value is None or not math.isfinite(float(value)))


def finite_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows whose every value is defined, as a table (with its header even when no row is)."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return pd.DataFrame([r for r in rows if not any(undefined_value(v) for v in r.values())], columns=columns or None)


def write_leaderboard(out: str | Path, document: dict[str, Any],
                      examples: dict[str, np.ndarray] | None = None) -> list[Path]:
    """Write ``leaderboard.json`` (module docstring; undefined numbers as ``null``), ``leaderboard.csv``
    and, with ``examples``, ``leaderboard_examples.npz`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [{k: (None if undefined_value(v) else v) for k, v in r.items()} for r in document["rows"]]
    with atomic_write(out / LEADERBOARD_CSV, "w", encoding="utf-8", newline="") as handle:
        finite_rows(document["rows"]).to_csv(handle, index=False)
    written = [out / LEADERBOARD_CSV, write_json(out / LEADERBOARD_JSON, stamped({**document, "rows": rows},
                                                                                 "leaderboard"))]
    if examples is not None:
        with atomic_write(out / LEADERBOARD_EXAMPLES) as handle:
            np.savez_compressed(handle, **examples)  # type: ignore[arg-type]
        written.append(out / LEADERBOARD_EXAMPLES)
    return written


def read_leaderboard(run_dir: str | Path) -> dict[str, Any]:
    """The ``leaderboard.json`` of ``run_dir`` (:class:`~dermx.runs.layout.RunFolderError` when it is
    missing or of another schema)."""
    path = Path(run_dir) / LEADERBOARD_JSON
    if not path.is_file():
        hint = (" (evaluated without --methods: rerun `dermx evaluate ... --methods all`)"
                if (Path(run_dir) / SUMMARY).is_file() else "")
        raise RunFolderError(f"{run_dir}: no {LEADERBOARD_JSON}{hint}")
    return check_schema(json.loads(path.read_text(encoding="utf-8")), path, ("leaderboard",))


def read_leaderboard_examples(run_dir: str | Path) -> dict[str, np.ndarray]:
    """The arrays of ``leaderboard_examples.npz`` (``image:<model>`` and ``map:<model>:<method>``);
    empty when the file is missing."""
    path = Path(run_dir) / LEADERBOARD_EXAMPLES
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}
