"""What a checkpoint records about the data it was trained on, so the benchmark can pick test images.

``training_data`` of a checkpoint (:class:`~dermx.models.ModelConfig`), written by
:meth:`~dermx.train.DermXDataModule.fingerprint`:

============  ==========================================================================
``source``    the data folder's (or label file's) name, never a path of the training machine
``sha256``    digest of the training and validation items (keys, diagnoses, labels;
              :func:`~dermx.train.splits.parts_digest`)
``data_sha256`` identity of the whole dataset (:func:`dermx.data.dermxdb_identity`, :func:`items_identity`):
              the same annotations give the same identity wherever the folder lives
``images``    the keys of every training and validation image, sorted
``pixels``    the pixel digest of each of them (:func:`dermx.data.pixel_digest`), sorted
``patients``  their patient groups (:attr:`dermx.train.Item.group`), sorted
``raters``    the annotators whose outlines gave the labels and guided-attention targets (``None``:
              every first-pass rater)
``fold``      the held-out fold, if any; ``n_train``, ``n_val``, ``n_test``
``missing_images`` DermXDB images the image folder did not hold (left out of every part; listed in
              the run folder's ``missing_images.txt``)
``left_out``  rows of a label table left out, by reason (:attr:`~dermx.train.collection.Collection.skipped`)
``initial_weights`` where the backbone's starting weights came from (hub name, file and its sha256,
              a bottleneck's trained first stage, or random), as it happened, not as asked
============  ==========================================================================

Beside the weights, :func:`write_model_card` writes ``README.md``: architecture, classes and
characteristics, this record, the resolution policy, map grid, the exported epoch's validation
figures (:func:`epoch_metrics`), the calibration fitted on the validation split (:func:`calibration_section`),
the weight source, intended use and limits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from dermx.atomic import write_text
from dermx.data import pixel_digest
from dermx.models import ModelConfig
from dermx.models.checkpoint import CALIBRATION_SKIPPED
from dermx.train.datasets import Item
from dermx.train.splits import parts_digest
from dermx.trust.fitted import MIN_GROUP


def items_identity(items: Sequence[Item]) -> str:
    """SHA-256 (16 hex digits) of an image collection: each item's key, diagnosis, patient group and
    the bytes of its image file."""
    digest = hashlib.sha256()
    for item in sorted(items, key=lambda i: i.key):
        digest.update(f"{item.key}|{item.diagnosis}|{item.group}|".encode())
        digest.update(item.path.read_bytes() if item.path.is_file() else b"")
    return digest.hexdigest()[:16]


def _calibration_images(data: Mapping[str, Any]) -> str:
    return f", {data['n_calibration']} calibration images" if data.get("n_calibration") else ""


def training_record(parts: Mapping[str, Sequence[Item]], source: str, *, fold: int | None, identity: str,
                    missing_images: int = 0, left_out: dict[str, int] | None = None) -> dict[str, Any]:
    """The ``training_data`` record (module docstring) of a run whose ``train``, ``val`` and ``test`` parts
    are ``parts``; the pixel digests read every training and validation image once."""
    seen = [*parts["train"], *parts["val"], *parts.get("calibration", [])]
    return {"source": source, "sha256": parts_digest(parts, source),
            **{f"n_{name}": len(items) for name, items in parts.items()},
            "fold": fold, "data_sha256": identity, "images": sorted(i.key for i in seen),
            "pixels": sorted({pixel_digest(i.path) for i in seen}),
            "patients": sorted({i.group for i in seen}),
            "missing_images": missing_images, "left_out": dict(left_out or {})}


def epoch_metrics(metrics_csv: str | Path, epoch: int) -> dict[str, float]:
    """The validation figures logged for ``epoch`` in a run's ``logs/metrics.csv`` (the last value of
    each ``val/`` column in that epoch's rows), with ``epoch`` itself; empty when nothing was logged."""
    path = Path(metrics_csv)
    if not path.is_file():
        return {}
    frame = pd.read_csv(path)
    rows = frame[frame["epoch"] == epoch] if "epoch" in frame else frame.iloc[:0]
    values = {c: rows[c].dropna() for c in rows.columns if c.startswith("val/")}
    out = {c: float(v.iloc[-1]) for c, v in values.items() if len(v)}
    return {"epoch": float(epoch), **out} if out else {}


def training_summary(record: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's ``training_data`` record for what a prediction or the service reports: the list of
    training and validation image keys (``images``) replaced by their count and a fingerprint,
    ``{"count": n, "sha256": 16 hex digits of the sorted keys joined by newlines}``; the rest as it is."""
    if not isinstance(record.get("images"), list):
        return dict(record)
    keys = sorted(str(k) for k in record["images"])
    return {**record, "images": {"count": len(keys),
                                 "sha256": hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]}}


def shown_epoch(metrics: dict[str, float]) -> int | None:
    """The exported epoch as the training log numbers it (``epoch k/N``, from 1), from the ``epoch`` of
    :func:`epoch_metrics` (Lightning's count, from 0, as in ``logs/metrics.csv``); ``None`` when unknown."""
    return int(metrics["epoch"]) + 1 if "epoch" in metrics else None


def _describe_weights(source: dict[str, Any]) -> str:
    if source.get("source") == "file":
        return f"local file `{source['file']}` (sha256 {source['sha256']})"
    if source.get("source") == "first stage":
        return (f"the backbone and characteristic head of a trained {source['kind']} model, unchanged "
                f"(`{source['file']}`, sha256 {source['sha256']}); only the diagnosis head was fitted")
    if source.get("source") == "hub":
        return f"timm hub `{source['name']}`" + (f" (tag {source['tag']})" if source.get("tag") else "")
    return "random initialisation (no pretrained weights)"


def calibration_section(record: dict[str, Any] | None) -> str:
    """The model card's account of ``ModelConfig.calibration``: temperature(s), α, score, validation images
    per group, or why there is none."""
    if record is None:
        return "None recorded: predictions of this model say `\"calibrated\": false`."
    if CALIBRATION_SKIPPED in record:
        return f"Skipped: {record[CALIBRATION_SKIPPED]}. Predictions of this model say `\"calibrated\": false`."
    counts = record.get("group_counts") or {}
    temperatures = record.get("group_temperatures") or {}
    groups = "\n".join(f"| {g} | {n} | {temperatures[g]:.4g} |" if g in temperatures else
                       f"| {g} | {n} | overall (fewer than {MIN_GROUP} images) |" for g, n in sorted(counts.items()))
    table = (f"\n\n| {record.get('group_key')} | validation images | temperature |\n|---|---|---|\n{groups}"
             if counts else "\n\nNo groups: the validation images carry no skin tone.")
    where = ("calibration images (patients that neither trained nor selected the model; never test images)"
             if record.get("split") == "calibration" else
             "validation images (never test images; they also selected the checkpoint, so the set thresholds "
             "are optimistic: train with --calibration-fraction for a part of its own)")
    return (f"Fitted on the {record['n']} {where}: temperature "
            f"{record['temperature']:.4g}; diagnosis sets at error rate α = {record['alpha']:g} with the "
            f"`{record['score']}` score (they hold the reference class for ≥ {1 - record['alpha']:.0%} of images "
            f"exchangeable with the validation images, per group with the group's threshold).{table}")


def interventions_section(config: ModelConfig) -> str:
    """The model card's account of ``ModelConfig.interventions`` (and of a cbm model's bottleneck)."""
    bottleneck = (f"A concept-bottleneck model trained `{config.bottleneck}`: its diagnosis is a linear function "
                  f"of the characteristic {config.bottleneck_reads} alone. " if config.kind == "cbm" else "")
    record = config.interventions
    if record is None:
        return bottleneck + ("None: a model without characteristics." if not config.characteristics else
                             "None recorded: this model refuses `--set`.")
    low, high = record["percentiles"]
    return (bottleneck + f"A characteristic set present takes the {high:g}th percentile of its logit over the "
            f"{record['n']} training images, absent the {low:g}th (`dermx predict --set NAME=present|absent`).")


def model_card(config: ModelConfig, metrics: dict[str, float], map_grid: tuple[int, int]) -> str:
    """The ``model/README.md`` of a trained model: what it is, what it saw, how well it did, its limits."""
    data = config.training_data
    chars = ", ".join(config.characteristics) if config.characteristics else "none (diagnosis only)"
    figures = "\n".join(f"| {k} | {v:.4f} |" for k, v in sorted(metrics.items()) if k != "epoch") or "| none | |"
    shown = shown_epoch(metrics)
    epoch = f" (epoch {shown}, the exported one)" if shown is not None else ""
    fold = data.get("fold")
    return f"""# dermx model: {config.kind} on {config.backbone}

| | |
|---|---|
| architecture | {config.backbone} (preset {config.preset or "none"}), kind `{config.kind}`, output stride \
{config.output_stride}, CAM layer `{config.cam_layer}` |
| diagnoses | {", ".join(config.diagnoses)} |
| characteristics | {chars} |
| input | {config.input_size[0]}x{config.input_size[1]} px, resolution policy `{config.resolution}` |
| map grid | {map_grid[0]}x{map_grid[1]} (CAM feature grid at the input size) |
| training data | `{data.get("source", "?")}`, identity {data.get("data_sha256") or "?"}, fingerprint \
{data.get("sha256", "?")}; {data.get("n_train", "?")} training, {data.get("n_val", "?")} validation, \
{data.get("n_test", "?")} test images{_calibration_images(data)}; held-out fold: \
{fold if fold is not None else "none"}; images missing from the image folder: {data.get("missing_images", 0)} |
| initial weights | {_describe_weights(data.get("initial_weights", {}))} |

## Validation figures{epoch}

| metric | value |
|---|---|
{figures}

## Calibration

{calibration_section(config.calibration)}

## Interventions

{interventions_section(config)}

## Intended use and limits

A research model for studying explainable diagnosis of the listed classes on clinical photographs: its
Grad-CAM maps can be scored against dermatologists' maps with `dermx evaluate`, which tests it only on
images absent from its training list (`config.json`, `training_data.images`). It is not a medical
device and must not guide the care of a patient. Figures above come from the validation part of its
own training data; they say nothing about other cameras, skin tones, populations or classes outside
the list above, and every prediction falls into one of those classes.
"""


def write_model_card(directory: str | Path, config: ModelConfig, metrics: dict[str, float],
                     map_grid: tuple[int, int]) -> Path:
    """Write :func:`model_card` to ``directory/README.md``."""
    return write_text(Path(directory) / "README.md", model_card(config, metrics, map_grid))
