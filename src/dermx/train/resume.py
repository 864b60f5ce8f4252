"""What an interrupted training run needs to resume without losing anything (``--resume``).

- Lightning checkpoints are written atomically (:class:`AtomicCheckpointIO`, through
  :mod:`dermx.atomic`): a kill while ``lightning/last.ckpt`` is written leaves the previous one.
- A ``last.ckpt`` that cannot be read anyway (written by an older version, a full disk) is refused with
  a clear error pointing to ``best.ckpt`` (:func:`resume_point`), never a raw traceback.
- The CSV log ``logs/metrics.csv`` (:class:`ResumedCSVLogger`) is rewritten whole and atomically at
  each save (Lightning's appends in place, and deletes the file when a resumed run starts), keeping the
  rows logged before the checkpoint the run resumes from.
- Lightning logs an epoch's training aggregates (``train/loss_epoch``, ...) after the checkpoint
  callbacks of that epoch have run, so a kill right after ``last.ckpt`` is written loses that epoch's
  row for good: :class:`EpochRowRecorder` stores the row in every checkpoint, and the resumed log
  puts it back when it is missing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from dermx.atomic import atomic_write, write_text

#: Key of the epoch's training row in a Lightning checkpoint (:class:`EpochRowRecorder`).
EPOCH_ROW = "dermx_train_epoch_row"


class ResumeError(ValueError):
    """A run cannot resume from its last checkpoint (one ``error:`` line on the command line)."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``torch.save`` of a checkpoint, written to a temporary file and renamed into place."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        with atomic_write(Path(path)) as handle:
            torch.save(checkpoint, handle)


class EpochRowRecorder(Callback):
    """Stores the epoch's training row, as the CSV log will hold it, in each checkpoint written at the end
    of a training epoch (module docstring): ``{"epoch", "step", "metrics"}``, the metrics being the
    ``train/`` values of the epoch (the ``_epoch`` copy where Lightning logs both per step and per epoch).
    Lightning runs this callback's ``on_train_epoch_end`` before the checkpoint callbacks'."""

    def __init__(self) -> None:
        self.epoch_ended = False

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_ended = False

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_ended = True

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if not self.epoch_ended:
            return
        logged = trainer.callback_metrics
        metrics = {name: float(value) for name, value in logged.items()
                   if name.startswith("train/") and not name.endswith("_step") and f"{name}_epoch" not in logged
                   and value.numel() == 1}
        # Lightning logs the epoch's row at the step of the epoch's last optimiser step
        checkpoint[EPOCH_ROW] = {"epoch": trainer.current_epoch, "step": max(trainer.global_step - 1, 0),
                                 "metrics": metrics}


@dataclass(frozen=True)
class ResumePoint:
    """Where a run resumes: the global step of ``last.ckpt`` and the training row stored in it."""

    global_step: int
    epoch_row: Mapping[str, Any] | None = None


def resume_point(last: Path) -> ResumePoint:
    """The :class:`ResumePoint` of ``last`` (``lightning/last.ckpt``); :class:`ResumeError` when the file
    cannot be read, naming ``best.ckpt`` (and its epoch) when that one can, as the checkpoint to resume
    from instead."""
    try:
        state = torch.load(last, map_location="cpu", weights_only=False, mmap=True)
        return ResumePoint(int(state["global_step"]), state.get(EPOCH_ROW))
    except Exception as error:  # a torn zip archive fails in several ways (RuntimeError, EOFError, KeyError, ...)
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    best = last.with_name("best.ckpt")
    try:
        epoch = torch.load(best, map_location="cpu", weights_only=False, mmap=True)["epoch"]
        hint = (f"{best.name} beside it is readable (epoch {epoch}): copy it over {last.name} to resume from that "
                "epoch, or run without --resume to start again")
    except Exception:  # any failure means: no usable fallback
        hint = f"{best.name} is missing or unreadable too: run without --resume to start again"
    raise ResumeError(f"{last}: cannot resume from this checkpoint, it is unreadable ({reason}); a run killed while "
                      f"writing it leaves it cut short. {hint}")


def _number(text: str | None) -> float | None:
    """A CSV cell as a number (``None`` when empty or not a number)."""
    try:
        return float(text) if text else None
    except ValueError:
        return None


class _CSVWriter(ExperimentWriter):
    """Lightning's CSV experiment writer holding every row and rewriting ``metrics.csv`` whole and atomically
    at each save, starting from ``rows`` (never deleting the file first)."""

    def __init__(self, log_dir: str, rows: list[dict[str, Any]], keys: list[str]) -> None:
        super().__init__(log_dir)
        self.rows = rows
        self.metrics_keys = keys

    def _check_log_dir_exists(self) -> None:
        """Lightning deletes an existing ``metrics.csv`` here; the rows kept are rewritten instead."""

    def save(self) -> None:
        if not self.metrics:
            return
        self._record_new_keys()
        self.rows += self.metrics
        self.metrics = []
        text = io.StringIO()
        table = csv.DictWriter(text, fieldnames=self.metrics_keys, lineterminator="\n")
        table.writeheader()
        table.writerows(self.rows)
        write_text(self.metrics_file_path, text.getvalue())


class ResumedCSVLogger(CSVLogger):
    """``<run>/logs/metrics.csv`` written by :class:`_CSVWriter`. When the run resumes from ``resume``,
    the rows logged before its global step are kept, and the training row stored in its checkpoint is put
    back when the log lacks it (module docstring)."""

    def __init__(self, run_dir: Path, resume: ResumePoint | None = None) -> None:
        super().__init__(run_dir, name="logs", version="")
        self.resume = resume

    def _kept_rows(self) -> tuple[list[dict[str, Any]], list[str]]:
        path = Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE
        if self.resume is None or not path.is_file():
            return [], []
        with path.open(newline="") as file:
            reader = csv.DictReader(file)
            rows: list[dict[str, Any]] = [row for row in reader if (row.get("step") or "").isdigit()
                                          and int(row["step"]) < self.resume.global_step]
            keys = list(reader.fieldnames or [])
        stored = self.resume.epoch_row or {"metrics": {}}
        epoch_rows = [row for row in rows if _number(row.get("epoch")) == stored.get("epoch")]
        missing = {k: v for k, v in stored["metrics"].items() if not any(row.get(k) for row in epoch_rows)}
        if missing:
            rows.append({"epoch": stored["epoch"], "step": stored["step"], **missing})
            keys = [*keys, *sorted(set(missing) - set(keys))]
        return rows, sorted({*keys, "epoch", "step"}) if rows else keys

    _experiment: ExperimentWriter | None

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            rows, keys = self._kept_rows()
            self._experiment = _CSVWriter(self.log_dir, rows, keys)
        return self._experiment
