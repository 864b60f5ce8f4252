"""Cross-validation: one :func:`~dermx.train.fit` per patient-grouped fold, predictions and
checkpoints per fold, and a summary.

Output layout::

    <out>/fold_<k>/...             one training run per fold (see dermx.train.fitting)
    <out>/predictions.csv          every fold's test predictions, with a ``fold`` column
    <out>/summary.csv              one row of test metrics per fold
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dermx.data import load_dermxdb
from dermx.train.config import TrainConfig
from dermx.train.fitting import TrainResult, fit


@dataclass
class CVResult:
    folds: dict[int, TrainResult]
    predictions: Path
    summary: Path


def available_folds(config: TrainConfig) -> list[int]:
    """The folds of the DermXDB folder, or ``range(n_folds)`` for an image collection."""
    if config.data is not None:
        return sorted(load_dermxdb(config.data, check_mask_sizes=False).folds)
    return list(range(config.n_folds))


def run_cv(config: TrainConfig, folds: list[int] | None = None) -> CVResult:
    """Train and test on each fold (default: all). With ``config.resume``, folds whose checkpoint and
    predictions exist are kept and an interrupted fold restarts from its last Lightning checkpoint."""
    out = Path(config.out)
    chosen = available_folds(config) if folds is None else folds
    if not chosen:
        raise ValueError("no folds to run")
    results: dict[int, TrainResult] = {}
    for k in chosen:
        fold_config = config.replace(fold=k, out=str(out / f"fold_{k}"))
        done = Path(fold_config.out)
        if config.resume and (done / "model" / "config.json").is_file() and (done / "predictions.csv").is_file():
            results[k] = TrainResult(done / "model", done, predictions=done / "predictions.csv")
            continue
        results[k] = fit(fold_config)
    frames = [pd.read_csv(r.predictions).assign(fold=k) for k, r in results.items() if r.predictions]
    predictions, summary = out / "predictions.csv", out / "summary.csv"
    pd.concat(frames, ignore_index=True).to_csv(predictions, index=False)
    rows = [{"fold": k, **{m: v for m, v in r.metrics.items() if m.startswith(("test/", "val/"))}}
            for k, r in results.items()]
    pd.DataFrame(rows).to_csv(summary, index=False)
    return CVResult(results, predictions, summary)
