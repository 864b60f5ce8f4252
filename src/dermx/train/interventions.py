"""The last step of training, beside calibration: the rule a clinician's correction of a characteristic
follows (:mod:`dermx.models.intervention`), from the exported model's characteristic logits on its
*training* images without augmentation (the images whose range the heads were fitted to; the validation
and test images are not used). Stored in the checkpoint as ``ModelConfig.interventions``; ``dx-only``
models have none. It costs one forward pass over the training images, whose logits a ``cbm`` model's
second stage (:mod:`dermx.train.bottleneck`) reuses."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dermx.models import DermXNet
from dermx.models.intervention import InterventionRule, fit_intervention_rule
from dermx.train.calibrate import head_logits
from dermx.train.datasets import ImageDataset


@dataclass(frozen=True)
class TrainingLogits:
    """The rule, with what it was fitted on: ``characteristic`` ``(n, C)`` logits of the training images,
    their reference ``diagnosis`` classes ``(n,)`` and characteristic ``labels`` ``(n, C)``."""

    rule: InterventionRule
    characteristic: torch.Tensor
    diagnosis: torch.Tensor
    labels: torch.Tensor


def fit_rule(model: DermXNet, dataset: ImageDataset, batch_size: int) -> TrainingLogits | None:
    """The intervention rule of ``model`` on the training ``dataset`` (module docstring); ``None`` for a
    model without characteristics or without training images."""
    if not model.config.characteristics or not dataset.items:
        return None
    logits, diagnosis = head_logits(model, dataset, batch_size)
    labels = torch.tensor([item.characteristics for item in dataset.items], dtype=torch.float32)
    rule = fit_intervention_rule(logits["characteristic"], model.config.characteristics)
    return TrainingLogits(rule, logits["characteristic"], diagnosis, labels)
