r"""Koh et al.'s (ICML 2020) three ways to train a concept-bottleneck (``cbm``) model, whose diagnosis is
``z_dx = W s(z_char) + b`` on its characteristics alone, ``s = σ`` (the probabilities; ``s`` the identity
for checkpoints whose ``bottleneck_reads`` is ``logits``, :class:`~dermx.models.ModelConfig`):

- **joint**: the whole network with one loss, ``CE(z_dx) + λ_c · BCE(z_char)`` (``char_weight``), as DermX
  is trained;
- **sequential**: the network is first trained on the characteristics alone (the diagnosis loss weighted
  0); then ``W, b`` are fitted to the diagnoses on its *frozen characteristic predictions* of the training
  images, ``s(ẑ_char(x_i)) → y_i``;
- **independent**: the same first stage; ``W, b`` are fitted on the training *labels* written as the head
  sees them when a clinician sets every characteristic: ``s(q5_j + c_ij (q95_j − q5_j))`` (the intervention
  rule's absent / present logits, :mod:`dermx.models.intervention`), so a fully corrected image is exactly
  what the head was trained on.

Either of the last two may also take guided attention (a guided-attention weight) in the first stage, or
take as its first stage a model already trained (``first_stage``, :func:`bottleneck_from`): the backbone and
characteristic head of a ``dermx`` or ``dermx+`` model, kept frozen as they are, so that the characteristics
are those of a network whose features the diagnosis loss also shaped (through its side channel ``h``, which
the bottleneck then drops). Only the head is fitted; the run must use the data the first stage was trained on.

**Random interventions** (``head_interventions = r > 0``, sequential only; the randomised interventions of
Espinosa Zarlenga et al., NeurIPS 2022, applied to the head's fit): the head is fitted on the frozen
predictions and on :data:`INTERVENED_COPIES` copies of them in which each characteristic of each image is,
with probability ``r``, replaced by its label set by the rule. A sequential head fitted on predictions alone
learns how much to trust each predicted characteristic, and may then read a corrected one wrongly; with the
copies it learns both what the model predicts and what a clinician sets. The copies' draws are seeded by
the run's seed.

**The head's fit** (:func:`fit_head`): multinomial logistic regression,
``min_{W,b} Σ_i w_{y_i} CE(W x_i + b, y_i) / Σ_i w_{y_i} + (λ/2) ‖W‖²`` with ``λ`` = :data:`L2` and the
run's class weights ``w`` (1 without), by L-BFGS (strong Wolfe line search) from zeros, full batch, in
float64 on the CPU: n × n_char inputs, a fraction of a second.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from dermx.choices import BottleneckMode
from dermx.models import DermXNet
from dermx.train.interventions import TrainingLogits
from dermx.train.losses import class_weight_tensor

#: Ridge penalty of the head's fit.
L2 = 1e-4
#: Most L-BFGS iterations of the head's fit.
MAX_ITER = 500
#: Randomly corrected copies of the training images a sequential head is also fitted on (module docstring).
INTERVENED_COPIES = 4


#: The parameters of a first stage a bottleneck does not take: its diagnosis head.
DIAGNOSIS_HEAD = ("diagnosis_mlp.", "diagnosis_out.")


def bottleneck_from(first: DermXNet, bottleneck: BottleneckMode) -> DermXNet:
    """A ``cbm`` network (trained ``bottleneck``: sequential or independent) with ``first``'s backbone and
    characteristic head, weights copied, and a diagnosis head ``Linear(n_char)`` still to be fitted
    (:func:`fit_bottleneck_head`). ``first``'s calibration, intervention rule and training record are not
    carried over: they are the bottleneck's to fit."""
    if not first.config.characteristics:
        raise ValueError(f"a {first.config.kind} model has no characteristics to be a bottleneck's first stage")
    if bottleneck not in ("sequential", "independent"):
        raise ValueError(f"a trained first stage takes a sequential or independent head, not {bottleneck!r}")
    config = dataclasses.replace(first.config, kind="cbm", bottleneck=bottleneck, bottleneck_reads="probabilities",
                                 calibration=None, interventions=None, training_data={})
    model = DermXNet(config)
    kept = {k: v for k, v in first.state_dict().items() if not k.startswith(DIAGNOSIS_HEAD)}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    if unexpected or {k for k in missing if not k.startswith(DIAGNOSIS_HEAD)}:
        raise ValueError(f"the first stage's weights do not fit a cbm {config.backbone}: missing {missing}, "
                         f"unexpected {unexpected}")
    return model.to(next(first.parameters()).device)


def same_training_data(first: dict[str, Any], run: dict[str, Any]) -> list[str]:
    """The fields of two ``training_data`` records (:func:`~dermx.train.provenance.training_record`) that
    differ, where the backbone's initial weights do not count: a first stage must have been trained on the
    run's parts, or the head's test images could be images it was trained on."""
    return sorted(k for k in set(first) | set(run) if k != "initial_weights" and first.get(k) != run.get(k))


def fit_head(x: torch.Tensor, y: torch.Tensor, n_classes: int, *, class_weights: torch.Tensor | None = None,
             l2: float = L2, max_iter: int = MAX_ITER) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W, b)`` of the module docstring's logistic regression of ``y`` ``(n,)`` on ``x`` ``(n, d)``."""
    x, y = x.double(), y.long()
    w = torch.zeros(n_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    weight = None if class_weights is None else class_weights.double()
    optimizer = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-10,
                                  tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ w.T + b, y, weight=weight) + 0.5 * l2 * (w ** 2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return w.detach(), b.detach()


def head_inputs(model: DermXNet, training: TrainingLogits, mode: str, *, interventions: float = 0.0,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """What the head is fitted on, as the head reads it (``model.head_input``), and the diagnosis of each row:
    the frozen predictions (``sequential``; with ``interventions`` > 0 also the randomly corrected copies) or
    the labels in the rule's scale (``independent``)."""
    absent = torch.tensor(training.rule.absent, dtype=torch.float64)
    present = torch.tensor(training.rule.present, dtype=torch.float64)
    labels = absent + training.labels.double() * (present - absent)
    if mode == "independent":
        return model.head_input(labels), training.diagnosis
    if mode != "sequential":
        raise ValueError(f"the head is fitted apart only for sequential and independent training, not {mode!r}")
    predicted = training.characteristic.double()
    rows = [predicted]
    if interventions > 0:
        generator = torch.Generator().manual_seed(seed)
        for _ in range(INTERVENED_COPIES):
            chosen = torch.rand(predicted.shape, generator=generator, dtype=torch.float64) < interventions
            rows.append(torch.where(chosen, labels, predicted))
    return model.head_input(torch.cat(rows)), training.diagnosis.repeat(len(rows))


def fit_bottleneck_head(model: DermXNet, training: TrainingLogits, class_weights: Mapping[str, float] | None = None,
                        *, interventions: float = 0.0, seed: int = 0) -> None:
    """Replace a ``cbm`` model's diagnosis head by the fit of its ``bottleneck`` mode (module docstring);
    ``interventions``: the rate of random interventions (sequential only)."""
    config = model.config
    if config.kind != "cbm" or config.bottleneck not in ("sequential", "independent"):
        raise ValueError(f"only a sequential or independent cbm model gets its head fitted apart, not "
                         f"{config.kind} ({config.bottleneck})")
    weights = class_weight_tensor(class_weights, config.diagnoses)
    x, y = head_inputs(model, training, config.bottleneck, interventions=interventions, seed=seed)
    w, b = fit_head(x, y, len(config.diagnoses), class_weights=weights)
    with torch.no_grad():
        model.diagnosis_out.weight.copy_(w.to(model.diagnosis_out.weight.dtype))
        model.diagnosis_out.bias.copy_(b.to(model.diagnosis_out.bias.dtype))
