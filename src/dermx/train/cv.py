"""Cross-validation: one :func:`~dermx.train.fit` per patient-grouped fold, predictions, explanation
maps and checkpoints per fold, and a summary.

Output layout::

    <out>/fold_<k>/...             one training run per fold (see dermx.train.fitting)
    <out>/fold_<k>/completed.json  what the finished fold holds: its predictions' rows and SHA-256, its
                                   weights' SHA-256, its metrics (see dermx.train.fold_record)
    <out>/fold_<k>/test_maps.npz   every target's CAM for each test image of the fold, float16,
                                   at the CAM feature grid by default (see dermx.train.fold_maps)
    <out>/predictions.csv          every fold's test predictions, with a ``fold`` column
    <out>/summary.csv              one row of test metrics per fold

Every file is written atomically (:mod:`dermx.atomic`), so a killed run leaves whole files or none;
``--resume`` keeps a fold only when its files are what its completion record says, and rebuilds the
pooled predictions and the summary from the kept folds' files and the folds run again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from rich.table import Table

from dermx.atomic import write_text
from dermx.compute.shards import SHARDS, Shards
from dermx.data import load_dermxdb
from dermx.explain.maps import MapSize, output_size
from dermx.train.config import TrainConfig
from dermx.train.fitting import TrainResult, fit
from dermx.train.fold_maps import MAPS_FILE, has_fold_maps, maps_method_name, write_test_maps
from dermx.train.fold_record import kept_fold, write_fold_record

log = logging.getLogger(__name__)


@dataclass
class CVResult:
    """Per-fold runs, the pooled predictions and summary, and each fold's maps file (when made)."""

    folds: dict[int, TrainResult]
    predictions: Path
    summary: Path
    maps: dict[int, Path] = field(default_factory=dict)


def available_folds(config: TrainConfig) -> list[int]:
    """The folds of the DermXDB folder, or ``range(n_folds)`` for an image collection."""
    if config.dataset.data is not None:
        return sorted(load_dermxdb(config.dataset.data, check_mask_sizes=False).folds)
    return list(range(config.dataset.n_folds))


def run_cv(config: TrainConfig, folds: list[int] | None = None, *, maps_method: str | None = "gradcam",
           maps_size: MapSize = "features") -> CVResult:
    """Train and test on each fold (default: all), then write every target's map for each test image
    (``fold_<k>/test_maps.npz``, see :mod:`dermx.train.fold_maps`).

    ``maps_method``: CAM method of the maps (``None`` or ``"none"``: no maps); ``maps_size``:
    ``"features"`` (the CAM feature grid, the default), ``"input"`` or ``(h, w)``. With ``config.run.resume``,
    folds that completed and whose files pass the check of their record are kept (:func:`kept_fold`; their
    maps are computed if missing or made with another method or size); any other fold is named with the
    reason and restarts from its last Lightning checkpoint.
    """
    out = Path(config.run.out)
    method = maps_method_name(maps_method)  # an unknown method or size fails before any training
    output_size(maps_size, (1, 1), (1, 1))
    chosen = available_folds(config) if folds is None else folds
    if not chosen:
        raise ValueError("no folds to run")
    results: dict[int, TrainResult] = {}
    maps: dict[int, Path] = {}
    for k in chosen:
        fold_config = config.replace(fold=k, out=str(out / f"fold_{k}"))
        done = Path(fold_config.run.out)
        kept, why = kept_fold(done) if config.run.resume and done.is_dir() else (None, "")
        resumed = kept is not None
        if kept is not None:
            results[k] = kept
        else:
            if why:
                log.warning("fold %d: %s: training it again, from its last checkpoint", k, why)
            results[k] = fit(fold_config)
            if results[k].predictions is not None:
                write_fold_record(k, results[k])
        if method is None:
            continue
        # the processes that trained the fold share its maps; the main one (global rank 0) alone has its
        # test predictions and says whether maps are due, once it has saved the checkpoint
        shards = Shards.joined(done / SHARDS)
        due = results[k].predictions is not None and not (resumed and has_fold_maps(done / MAPS_FILE, method,
                                                                                      maps_size))
        if shards.agree(due):
            write_test_maps(fold_config, results[k].checkpoint_dir, method=method, size=maps_size, shards=shards)
        if results[k].predictions is not None:
            maps[k] = done / MAPS_FILE
    frames = [pd.read_csv(r.predictions).assign(fold=k) for k, r in results.items() if r.predictions]
    predictions = write_text(out / "predictions.csv", pd.concat(frames, ignore_index=True).to_csv(index=False))
    rows = [{"fold": k, **{m: v for m, v in r.metrics.items() if m.startswith(("test/", "val/"))}}
            for k, r in results.items()]
    summary = write_text(out / "summary.csv", pd.DataFrame(rows).to_csv(index=False))
    return CVResult(results, predictions, summary, maps)


def fold_table(summary: pd.DataFrame) -> Table:
    """The per-fold test metrics of ``summary.csv`` (one row per fold) and their mean ± SD over folds, as
    a rich table for the terminal (``val/`` columns stay in the CSV)."""
    columns = [c for c in summary.columns if c.startswith("test/")]
    table = Table(title=f"Cross-validation: test metrics per fold ({len(summary)} folds)")
    table.add_column("fold", justify="right")
    for column in columns:
        table.add_column(column.removeprefix("test/"), justify="right")
    for _, row in summary.iterrows():
        table.add_row(str(int(row["fold"])), *(f"{row[c]:.3f}" for c in columns))
    values = summary[columns].astype(float)
    table.add_section()
    if len(summary) > 1:
        table.add_row("mean ± SD", *(f"{values[c].mean():.3f} ± {values[c].std(ddof=1):.3f}" for c in columns),
                      style="bold")
    else:
        table.add_row("mean", *(f"{values[c].mean():.3f}" for c in columns), style="bold")
    return table
