"""Train one model (one fold) with Lightning and export a shareable checkpoint.

Run folder layout::

    <out>/config.json              the TrainConfig used
    <out>/lightning/{best,last}.ckpt   Lightning checkpoints: best on ``monitor``, last of every epoch
                                   (``resume=True`` continues from last)
    <out>/logs/metrics.csv         CSV log, kept across resumes
    <out>/tensorboard/             TensorBoard events, when tensorboard or tensorboardX is installed
    <out>/model/                   shareable checkpoint of the selected model (see dermx.models), with
                                   its calibration fitted on the validation split (dermx.train.calibrate),
                                   and its model card README.md (dermx.train.provenance)
    <out>/predictions.csv          test-part predictions, when the run has a test part
    <out>/missing_images.txt       DermXDB images the image folder lacks (left out), when there are any
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, ProgressBar, RichProgressBar
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from rich.console import Console
from rich.progress import TaskID

from dermx import vocab
from dermx.atomic import write_text
from dermx.models import DermXNet, build_model, load_checkpoint, save_checkpoint
from dermx.models.checkpoint import WEIGHTS_FILE
from dermx.models.weights import sha256_of
from dermx.progress import PlainProgress
from dermx.train.bottleneck import bottleneck_from, fit_bottleneck_head, same_training_data
from dermx.train.calibrate import calibrate, calibration_record, head_logits, summary_line
from dermx.train.collection import Collection, collection_of
from dermx.train.config import TrainConfig
from dermx.train.datamodule import DermXDataModule, split_table
from dermx.train.datasets import ImageDataset
from dermx.train.interventions import fit_rule
from dermx.train.losses import char_pos_weight_tensor
from dermx.train.module import DermXModule, macro_f1
from dermx.train.provenance import epoch_metrics, write_model_card
from dermx.train.resume import AtomicCheckpointIO, EpochRowRecorder, ResumedCSVLogger, ResumePoint, resume_point

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a run produced: the shareable checkpoint, its folder, and final metrics."""

    checkpoint_dir: Path
    run_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    predictions: Path | None = None


def model_from_config(config: TrainConfig, collection: Collection | None = None) -> DermXNet:
    """The network a run trains; its config records the run's resolution policy for inference. With an
    image ``collection`` (:func:`~dermx.train.collection.collection_of`), its classes and
    characteristics are the model's (the user's own vocabulary unless it is DermXDB's)."""
    chars: Any = config.model.characteristics
    diagnoses, vocabulary = None, "dermxdb"
    if collection is not None:
        if config.model.characteristics is not None and collection.characteristics:
            raise ValueError("--characteristics does not apply to a label table: its 0/1 columns are the "
                             f"characteristics ({', '.join(collection.columns.values())})")
        diagnoses = collection.classes
        chars = collection.characteristics if config.model.kind != "dx-only" else ()
        own = diagnoses != vocab.DIAGNOSES or not set(chars) <= set(vocab.CHARACTERISTICS)
        vocabulary = "own" if own else "dermxdb"
    spec = config.model
    model = build_model(spec.preset, kind=spec.kind, backbone=spec.backbone, characteristics=chars,
                        input_size=spec.input_size, output_stride=spec.output_stride, cam_layer=spec.cam_layer,
                        dropout=spec.dropout,
                        pretrained=spec.pretrained, weights=spec.backbone_weights,
                        random_fallback=spec.random_fallback, diagnoses=diagnoses,
                        vocabulary=vocabulary, bottleneck=spec.bottleneck)
    model.config.resolution = spec.resolution
    return model


def _devices(value: str) -> int | str | list[int]:
    if value.isdigit() or value == "-1":
        return int(value)
    if "," in value:
        return [int(v) for v in value.split(",") if v.strip()]
    return value


def build_trainer(config: TrainConfig, run_dir: Path,
                  resume: ResumePoint | None = None) -> tuple[L.Trainer, ModelCheckpoint]:
    """A Trainer with the run's loggers and callbacks (``inference_mode=False`` for Grad-CAM), writing its
    checkpoints and CSV log so that an interrupted run loses nothing (:mod:`dermx.train.resume`);
    ``resume``: the checkpoint the run resumes from."""
    mode = "max" if config.optim.monitor.endswith("f1") else "min"
    best = ModelCheckpoint(dirpath=run_dir / "lightning", filename="best", monitor=config.optim.monitor, mode=mode,
                           save_top_k=1, auto_insert_metric_name=False)
    # every epoch (Lightning >= 2.6 writes save_last=True's last.ckpt only when a top-k checkpoint is saved)
    last = ModelCheckpoint(dirpath=run_dir / "lightning", filename="last", monitor=None, save_top_k=1,
                           enable_version_counter=False)
    callbacks: list[Callback] = [best, last, EpochRowRecorder()]
    if config.optim.early_stopping:
        callbacks.append(EarlyStopping(monitor=config.optim.monitor, mode=mode, patience=config.optim.early_stopping))
    if config.run.progress:
        callbacks.append(RichProgressBar() if Console().is_terminal else PlainProgressBar())
    loggers: list[Logger] = [ResumedCSVLogger(run_dir, resume)]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        loggers.append(TensorBoardLogger(run_dir, name="tensorboard", version=""))
    trainer = L.Trainer(
        max_epochs=config.optim.epochs, accelerator=config.run.accelerator, devices=_devices(config.run.devices),
        num_nodes=config.run.num_nodes, strategy=config.run.strategy, precision=config.run.precision,  # type: ignore[arg-type]
        deterministic=config.run.deterministic, inference_mode=False, logger=loggers, callbacks=callbacks,
        log_every_n_steps=config.run.log_every_n_steps, enable_progress_bar=config.run.progress,
        enable_model_summary=False, default_root_dir=run_dir, plugins=[AtomicCheckpointIO()])
    return trainer, best


def shown_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The epoch's logged values by name, sorted, without Lightning's per-step copies (``<name>_step``) and
    without the ``<name>_epoch`` copy of a value also logged as ``<name>``."""
    names = set(metrics)
    return {k: float(v) for k, v in sorted(metrics.items())
            if not k.endswith("_step") and not (k.endswith("_epoch") and k.removesuffix("_epoch") in names)}


class PlainProgressBar(ProgressBar):
    """Training progress as the plain lines of :class:`dermx.progress.PlainProgress`, for output that is not
    a terminal (where Lightning's rich bar shows nothing until the end): the batches of each epoch every
    few seconds, and each finished epoch with its logged metrics."""

    def __init__(self, console: Console | None = None, **options: Any) -> None:
        super().__init__()
        self.lines = PlainProgress(console, **options)
        self._task = TaskID(0)

    def disable(self) -> None:
        self.lines.disable = True

    def enable(self) -> None:
        self.lines.disable = False

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        total = self.total_train_batches
        self._task = self.lines.add_task(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}",
                                         total=total if isinstance(total, int) else None)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.lines.update(self._task, completed=batch_idx + 1)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in shown_metrics(trainer.callback_metrics).items())
        if not self.lines.disable:
            self.lines.console.print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} done"
                                     + (f": {shown}" if shown else ""), markup=False, highlight=False)


@torch.no_grad()
def predict_frame(model: DermXNet, dataset: ImageDataset, batch_size: int = 32) -> pd.DataFrame:
    """Per-image probabilities: ``stem``, ``reference``, ``predicted``, ``dx:<class>`` (softmax),
    ``char:<name>`` (sigmoid) and ``char_ref:<name>`` (reference label)."""
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    device = next(model.parameters()).device
    rows: list[dict[str, object]] = []
    diagnoses, chars = model.config.diagnoses, model.config.characteristics
    for batch in loader:
        dx, char = (p.cpu() for p in model.probabilities(model(batch["image"].to(device))))
        for j, index in enumerate(batch["index"].tolist()):
            item = dataset.items[index]
            row: dict[str, object] = {"stem": item.key, "reference": diagnoses[item.diagnosis],
                                      "predicted": diagnoses[int(dx[j].argmax())]}
            row.update({f"dx:{name}": float(dx[j, i]) for i, name in enumerate(diagnoses)})
            row.update({f"char:{name}": float(char[j, i]) for i, name in enumerate(chars)})
            row.update({f"char_ref:{name}": item.characteristics[i] for i, name in enumerate(chars)})
            rows.append(row)
    return pd.DataFrame(rows)


def frame_scores(frame: pd.DataFrame, diagnoses: tuple[str, ...], chars: tuple[str, ...]) -> dict[str, float]:
    """Diagnosis and characteristic macro-F1 of a :func:`predict_frame` table."""
    truth = torch.tensor([diagnoses.index(r) for r in frame["reference"]])
    dx = torch.tensor(frame[[f"dx:{n}" for n in diagnoses]].to_numpy())
    if not chars:
        return macro_f1(dx, truth)
    char = torch.tensor(frame[[f"char:{n}" for n in chars]].to_numpy())
    ref = torch.tensor(frame[[f"char_ref:{n}" for n in chars]].to_numpy())
    return macro_f1(dx, truth, char, ref)


def fit(config: TrainConfig) -> TrainResult:
    """Train one model as ``config`` says; select it on the inner validation split; calibrate it on the
    same split (:mod:`dermx.train.calibrate`); export it.

    When the run fails before anything is written (bad data folder, bad trainer flags), the ``out``
    folder is removed again if this call created it.
    """
    run_dir = Path(config.run.out)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _fit_into(config, run_dir)
    except BaseException:
        if created and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()
        raise


@rank_zero_only
def _print_splits(data: DermXDataModule, classes: tuple[str, ...]) -> None:
    """The data summary (:func:`~dermx.train.datamodule.split_table`) on stderr, before training."""
    Console(stderr=True).print(split_table(data.parts, classes))


def _fit_into(config: TrainConfig, run_dir: Path) -> TrainResult:
    """The body of :func:`fit`, writing into the existing ``run_dir``."""
    L.seed_everything(config.run.seed, workers=True)
    collection = collection_of(config)
    if config.model.first_stage:
        return _fit_on_first_stage(config, run_dir, collection)
    model = model_from_config(config, collection)
    data = DermXDataModule(config, model.config, collection)
    data.setup()
    _print_splits(data, model.config.diagnoses)
    labels = torch.tensor([item.characteristics for item in data.parts["train"]], dtype=torch.float32)
    pos_weight = char_pos_weight_tensor(labels, config.optim.char_pos_weight, config.optim.char_pos_weight_max)
    module = DermXModule(model, config, char_pos_weight=pos_weight)
    last = run_dir / "lightning" / "last.ckpt"
    resume = config.run.resume and last.is_file()
    if config.run.resume and not resume:
        log.warning("--resume: no %s yet, starting from scratch", last)
    trainer, best = build_trainer(config, run_dir, resume=resume_point(last) if resume else None)
    source = getattr(model.backbone, "weight_source", {"source": "random"})
    if trainer.is_global_zero:  # offline, "pretrained" may have fallen back to random
        _record_inputs(config if source["source"] != "random" else config.replace(pretrained=False), data, run_dir)
    trainer.fit(module, datamodule=data, ckpt_path=last if resume else None)
    selected = best.best_model_path or (str(last) if last.is_file() else "")
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    if selected:
        saved = torch.load(selected, map_location="cpu", weights_only=False)
        module.load_state_dict(saved["state_dict"])
        # the exported epoch's figures, not the last epoch's
        metrics = epoch_metrics(run_dir / "logs" / "metrics.csv", int(saved["epoch"])) or metrics
    model.config.training_data = {**data.fingerprint(), "initial_weights": source}
    if not trainer.is_global_zero:
        return TrainResult(run_dir / "model", run_dir, metrics)
    return _export(model, config, data, run_dir, metrics)


def _record_inputs(config: TrainConfig, data: DermXDataModule, run_dir: Path) -> None:
    """What the run was given, as it happened: its ``config.json``, and the DermXDB images the image folder
    lacked (``missing_images.txt``, when any)."""
    config.save(run_dir / "config.json")
    if data.coverage is not None:
        data.coverage.write_missing(run_dir)


def _fit_on_first_stage(config: TrainConfig, run_dir: Path, collection: Collection | None) -> TrainResult:
    """A ``cbm`` run on a trained first stage (``first_stage``, :func:`~dermx.train.bottleneck.bottleneck_from`):
    no training loop; the head is fitted and the model exported as any run's is."""
    path, mode = Path(str(config.model.first_stage)), config.model.bottleneck
    assert mode is not None  # ModelOptions takes a first stage only with a sequential or independent bottleneck
    first = load_checkpoint(path)
    model = bottleneck_from(first, mode)
    data = DermXDataModule(config, model.config, collection)
    data.setup()
    _print_splits(data, model.config.diagnoses)
    record = data.fingerprint()
    differ = same_training_data(first.config.training_data, record)
    if differ:
        raise ValueError(f"{path}: the first stage was trained on other data than this run's (its {', '.join(differ)} "
                         "differ): its characteristics would have seen the head's validation or test images; "
                         "train the bottleneck with the first stage's data, fold and split options")
    _record_inputs(config.replace(pretrained=False), data, run_dir)  # no weights but the first stage's
    weights = path / WEIGHTS_FILE
    model.config.training_data = {**record, "initial_weights": {"source": "first stage", "kind": first.config.kind,
                                                                "file": weights.name, "sha256": sha256_of(weights)}}
    return _export(model, config, data, run_dir, {})


def _export(model: DermXNet, config: TrainConfig, data: DermXDataModule, run_dir: Path,
            metrics: dict[str, float]) -> TrainResult:
    """The end of a run, on rank 0: the intervention rule (and a bottleneck's head), the calibration, the
    checkpoint with its model card, and the test part's predictions."""
    result = TrainResult(run_dir / "model", run_dir, metrics)
    training = fit_rule(model.cpu(), data.dataset("train", augment=False), config.optim.batch_size)
    if training is not None:
        if model.config.bottleneck in ("sequential", "independent"):
            fit_bottleneck_head(model, training, config.optim.class_weights,
                                interventions=config.model.head_interventions, seed=config.run.seed)
            # the selected epoch's diagnosis figures were of the head before its fit: recomputed with it
            logits, truth = head_logits(model, data.dataset("val", augment=False), config.optim.batch_size)
            if len(truth):
                metrics["val/dx_f1"] = macro_f1(logits["diagnosis"].softmax(dim=1), truth)["dx_f1"]
        model.config.interventions = training.rule.to_dict()
    split = "calibration" if data.parts.get("calibration") else "val"
    calibration = calibrate(model, data.dataset(split, augment=False), data.db, config.optim.batch_size,
                            split="calibration" if split == "calibration" else "validation")
    model.config.calibration = calibration_record(calibration)
    save_checkpoint(model, result.checkpoint_dir)
    write_model_card(result.checkpoint_dir, model.config, metrics, model.map_grid())
    if data.parts["test"]:
        frame = predict_frame(model, data.dataset("test", augment=False), config.optim.batch_size)
        result.predictions = write_text(run_dir / "predictions.csv", frame.to_csv(index=False))
        scores = frame_scores(frame, model.config.diagnoses, model.config.characteristics)
        metrics.update({f"test/{k}": v for k, v in scores.items()})
    Console(stderr=True).print(summary_line(calibration), markup=False, highlight=False, soft_wrap=True)
    return result
