"""The completion record of a cross-validation fold, ``fold_<k>/completed.json``, and its check on resume.

``dermx cv`` writes the record (atomically) once a fold's training run has exported its model and its
test predictions. It says what the fold holds::

    {"fold": k,
     "predictions": {"file": "predictions.csv", "rows": n, "sha256": ...},
     "model": {"file": "model/model.safetensors", "sha256": ...},
     "metrics": {"val/...": ..., "test/...": ...}}

``dermx cv --resume`` keeps a fold only when its record is there and its files still are what the
record says (:func:`kept_fold`): the same predictions (rows and SHA-256) and the same weights. A fold
that fails the check is named with the reason and trained again, continuing from its last Lightning
checkpoint (which makes an already finished fold quick). A kept fold's test metrics are recomputed
from its ``predictions.csv`` (:func:`~dermx.train.fitting.frame_scores`), its validation metrics come
from the record: the summary of a resumed run is the summary of all its folds, never blank rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from dermx.jsonio import write_json
from dermx.models.checkpoint import WEIGHTS_FILE
from dermx.models.weights import sha256_of
from dermx.train.fitting import TrainResult, frame_scores

RECORD_FILE = "completed.json"
PREDICTIONS_FILE = "predictions.csv"


def _reported(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k.startswith(("test/", "val/"))}


def _test_metrics(frame: pd.DataFrame) -> dict[str, float]:
    """Test macro-F1s recomputed from a fold's predictions (class and characteristic names from its
    ``dx:`` and ``char:`` columns)."""
    diagnoses = tuple(c.removeprefix("dx:") for c in frame.columns if c.startswith("dx:"))
    chars = tuple(c.removeprefix("char:") for c in frame.columns if c.startswith("char:"))
    return {f"test/{k}": v for k, v in frame_scores(frame, diagnoses, chars).items()}


def write_fold_record(fold: int, result: TrainResult) -> Path:
    """Write ``completed.json`` of a finished fold run (module docstring)."""
    assert result.predictions is not None
    rows = len(pd.read_csv(result.predictions))
    weights = result.checkpoint_dir / WEIGHTS_FILE
    return write_json(result.run_dir / RECORD_FILE, {
        "fold": fold,
        "predictions": {"file": PREDICTIONS_FILE, "rows": rows, "sha256": sha256_of(result.predictions)},
        "model": {"file": str(weights.relative_to(result.run_dir)), "sha256": sha256_of(weights)},
        "metrics": _reported(result.metrics)})


def _check(run_dir: Path, record: dict[str, Any]) -> str | None:
    """Why the files of ``run_dir`` are not those ``record`` describes, or ``None`` when they are."""
    for part in ("predictions", "model"):
        path = run_dir / record[part]["file"]
        if not path.is_file():
            return f"{path.relative_to(run_dir)} is missing"
        if sha256_of(path) != record[part]["sha256"]:
            if part == "predictions":
                try:
                    rows = f"{len(pd.read_csv(path))} rows"
                except (ValueError, pd.errors.ParserError) as error:
                    rows = f"unreadable rows ({error})"
                return f"{PREDICTIONS_FILE} holds {rows}, its completion record {record[part]['rows']} (another file)"
            return f"{path.relative_to(run_dir)} is not the model the fold completed with"
    return None


def kept_fold(run_dir: Path) -> tuple[TrainResult | None, str]:
    """The result of a completed fold whose files pass the check of its record (module docstring), with
    its metrics; else ``None`` and why the fold cannot be kept."""
    path = run_dir / RECORD_FILE
    if not path.is_file():
        return None, f"no {RECORD_FILE} (interrupted before it completed, or run by an older dermx)"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        problem = _check(run_dir, record)
    except (ValueError, KeyError, TypeError) as error:
        return None, f"{RECORD_FILE} is unreadable ({error})"
    if problem is not None:
        return None, problem
    predictions = run_dir / PREDICTIONS_FILE
    metrics = {**record["metrics"], **_test_metrics(pd.read_csv(predictions))}
    return TrainResult(run_dir / "model", run_dir, metrics, predictions), ""
