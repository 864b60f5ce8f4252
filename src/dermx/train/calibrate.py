"""The last step of training: fit the exported model's calibration on its validation split.

The selected model is run on the run's ``calibration`` part when it has one (``calibration_fraction``:
patients that neither trained nor selected the model), else on its ``val`` part (the images it was
selected on, so the thresholds are optimistic; the record's ``split`` says which), never the test part,
without augmentation; its diagnosis logits ``z``, the reference classes ``y`` and, for a
DermXDB run whose every validation image has one, each image's skin tone go to
:func:`~dermx.trust.fitted.fit_model_calibration`. The result is stored in the checkpoint
(``ModelConfig.calibration``), which ``predict`` and ``serve`` apply.

A validation split of fewer than :data:`MIN_IMAGES` images, or of one class only, cannot fit a
temperature: the record is then ``{"skipped": reason}`` (:data:`~dermx.models.checkpoint.CALIBRATION_SKIPPED`)
and a warning is logged; predictions of that model say ``"calibrated": false`` with the reason.

:func:`summary_line` reports, on the validation images themselves (in-sample: the figures it was
fitted on): the temperature, the top-label ECE (:func:`~dermx.trust.calibration.ece`, 15 equal-width
bins) of ``softmax(z)`` and of the calibrated probabilities, and the fraction of images whose
diagnosis set holds the reference class.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from dermx.data import DermXDB
from dermx.models import DermXNet
from dermx.models.checkpoint import CALIBRATION_SKIPPED
from dermx.train.datasets import ImageDataset
from dermx.trust.calibration import ece
from dermx.trust.fitted import ModelCalibration, Split, fit_model_calibration

log = logging.getLogger(__name__)

#: Fewest validation images a calibration is fitted on.
MIN_IMAGES = 2


@dataclass(frozen=True)
class Fitted:
    """A fitted calibration with its in-sample validation figures (module docstring)."""

    calibration: ModelCalibration
    ece_before: float
    ece_after: float
    set_coverage: float


@torch.no_grad()
def head_logits(model: DermXNet, dataset: ImageDataset, batch_size: int) -> tuple[dict[str, torch.Tensor],
                                                                                  torch.Tensor]:
    """Every head's logits of ``model`` (eval mode) on ``dataset`` in its order (``{"diagnosis": (n, K),
    "characteristic": (n, C)}``, float32 on the CPU), and the ``(n,)`` reference classes."""
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    device = next(model.parameters()).device
    logits: dict[str, list[torch.Tensor]] = {}
    labels: list[int] = []
    for batch in loader:
        for head, value in model(batch["image"].to(device)).items():
            logits.setdefault(head, []).append(value.float().cpu())
        labels += [dataset.items[i].diagnosis for i in batch["index"].tolist()]
    return {head: torch.cat(values) for head, values in logits.items()}, torch.tensor(labels, dtype=torch.long)


def diagnosis_logits(model: DermXNet, dataset: ImageDataset, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n, K)`` diagnosis logits of ``model`` (eval mode) on ``dataset`` in its order, and the ``(n,)``
    reference classes."""
    logits, labels = head_logits(model, dataset, batch_size)
    return logits["diagnosis"], labels


def skin_tones(db: DermXDB | None, keys: Sequence[str]) -> list[str] | None:
    """Each image's skin tone from DermXDB's metadata, or ``None`` when the data has none (an image
    collection) or any image lacks one (the count is logged: groups of some images only would leave the
    others out of every group)."""
    if db is None:
        return None
    tones = [db.images[k].skin_tone if k in db.images else None for k in keys]
    lacking = sum(not t for t in tones)
    if lacking:
        log.warning("calibration: %d of %d validation images have no skin tone in metadata.csv; calibrating "
                    "without groups", lacking, len(keys))
        return None
    return [str(t) for t in tones]


def skip_reason(labels: torch.Tensor) -> str | None:
    """Why a validation split with these reference classes cannot be calibrated, or ``None``."""
    if len(labels) < MIN_IMAGES:
        return f"the validation split has {len(labels)} image(s); calibration needs at least {MIN_IMAGES}"
    if len(set(labels.tolist())) < 2:
        return "the validation split holds one diagnosis class only; a temperature needs at least two"
    return None


def calibrate(model: DermXNet, dataset: ImageDataset, db: DermXDB | None, batch_size: int, *,
              split: Split = "validation") -> Fitted | str:
    """Fit ``model``'s calibration on ``dataset``, the run's ``split`` (module docstring); the reason
    instead when it cannot be fitted."""
    if not dataset.items:
        return f"the validation split is empty; calibration needs at least {MIN_IMAGES} images"
    z, y = diagnosis_logits(model, dataset, batch_size)
    reason = skip_reason(y)
    if reason is not None:
        return reason
    groups = skin_tones(db, [item.key for item in dataset.items])
    calibration = fit_model_calibration(z, y, groups, patients=[item.group for item in dataset.items], split=split)
    probabilities = calibration.probabilities(z, groups)
    covered = calibration.sets(probabilities, groups)[torch.arange(len(y)), y]
    return Fitted(calibration, ece(torch.softmax(z.double(), dim=1), y), ece(probabilities, y),
                  float(covered.double().mean()))


def calibration_record(result: Fitted | str) -> dict[str, Any]:
    """What ``ModelConfig.calibration`` stores of :func:`calibrate`'s result; a skip is logged as a warning."""
    if isinstance(result, str):
        log.warning("calibration skipped: %s; predictions of this model will say \"calibrated\": false", result)
        return {CALIBRATION_SKIPPED: result}
    return result.calibration.to_dict()


def summary_line(result: Fitted | str) -> str:
    """One line for the end of training (module docstring)."""
    if isinstance(result, str):
        return f"calibration skipped: {result}"
    c = result.calibration
    groups = (f"; per {c.group_key}: " + ", ".join(f"{g} T={t:.3g}" for g, t in sorted(c.group_temperatures.items()))
              if c.group_temperatures else "")
    check = c.temperature_checks.get("all")
    if check is not None and not check["applied"]:
        cross = "n/a" if check["ece_cross_fitted"] is None else f"{check['ece_cross_fitted']:.3f}"
        why = ("the fit stopped at a bound: the validation logits separate the classes" if check.get("at_bound")
               else f"cross-fitted ECE {cross} against {check['ece_baseline']:.3f} at T=1")
        groups = f" (fitted T={check['fitted']:.3g} not applied: {why})" + groups
    return (f"calibration on {c.n} {c.split} images: temperature {c.temperature:.3g}{groups}; ECE "
            f"{result.ece_before:.3f} -> {result.ece_after:.3f}; diagnosis sets (alpha {c.alpha:g}, {c.score}) "
            f"hold the reference class for {result.set_coverage:.0%} of them (in-sample)")
