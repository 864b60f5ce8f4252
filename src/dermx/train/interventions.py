"""The last step of training, beside calibration: the rule a clinician's correction of a characteristic
follows (:mod:`dermx.models.intervention`), from the exported model's characteristic logits on its
*training* images without augmentation (the images whose range the heads were fitted to; the validation
and test images are not used). Stored in the checkpoint as ``ModelConfig.interventions``; ``dx-only``
models have none. It costs one forward pass over the training images."""

from __future__ import annotations

from typing import Any

from dermx.models import DermXNet
from dermx.models.intervention import fit_intervention_rule
from dermx.train.calibrate import head_logits
from dermx.train.datasets import ImageDataset


def intervention_record(model: DermXNet, dataset: ImageDataset, batch_size: int) -> dict[str, Any] | None:
    """``ModelConfig.interventions`` of ``model`` (module docstring): ``None`` for a model without
    characteristics or without training images."""
    if not model.config.characteristics or not dataset.items:
        return None
    logits, _ = head_logits(model, dataset, batch_size)
    return fit_intervention_rule(logits["characteristic"], model.config.characteristics).to_dict()
