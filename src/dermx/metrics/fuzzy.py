r"""Fuzzy confusion counts and the scores built on them.

For a prediction ``p`` and a reference ``y``, both membership maps in [0, 1], a t-norm ``t`` (fuzzy
AND) and NOT ``x ↦ 1 − x``, summed over the pixels (the last two dims)::

    TP = Σ t(y, p)        FP = Σ t(1 − y, p)
    FN = Σ t(y, 1 − p)    TN = Σ t(1 − y, 1 − p)

with ``t = min`` (Zadeh, the default) or ``t(a, b) = a·b`` (product). The matching t-conorm (fuzzy
OR) gives the union ``U = Σ max(y, p)`` (Zadeh) or ``U = Σ (y + p − y·p)`` (probabilistic sum).

Scores (all in [0, 1], higher is better)::

    sensitivity = TP / Σy          specificity = TN / Σ(1 − y)
    precision   = TP / Σp          NPV         = TN / Σ(1 − p)
    IoU         = TP / U           Dice        = 2·TP / (Σy + Σp)

Dice is the F1 of fuzzy precision and sensitivity: 2·P·S / (P + S) = 2·TP / (Σy + Σp) when TP > 0.
The denominators are the marginal sums, not TP + FN etc.: with the min t-norm TP + FN ≠ Σy in
general. On binary inputs both t-norms give the crisp counts and scores. With the min t-norm,
``p = y`` scores 1 on every metric; with the product t-norm a fuzzy ``p = y`` scores below 1
(Σy² < Σy).

A ratio whose denominator is 0 is undefined: NaN, flagged in :class:`~dermx.metrics.Scores`.

Inputs are batched: ``prediction`` and ``reference`` have shapes ``(*A, H, W)`` and ``(*B, H, W)``
with the same number of dims and broadcastable leading dims (e.g. ``(B, T, R, H, W)`` against
``(B, T, 1, H, W)``); results have the broadcast leading shape. Everything is a tensor reduction on
the inputs' device. Sums accumulate in the inputs' floating dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

from dermx.metrics._validation import check_pair, check_unit_interval
from dermx.metrics.scores import Scores, ratio

TNorm = Literal["min", "product"]
"""Fuzzy AND: ``"min"`` (Zadeh, t(a, b) = min(a, b)) or ``"product"`` (t(a, b) = a·b)."""

_PIXELS = (-2, -1)


@dataclass(frozen=True)
class FuzzyConfusion:
    """Fuzzy confusion counts and marginal sums, each of the broadcast leading shape.

    ``reference_sum`` = Σy, ``reference_complement_sum`` = Σ(1 − y), ``prediction_sum`` = Σp,
    ``prediction_complement_sum`` = Σ(1 − p), ``union`` = Σ max(y, p) or Σ (y + p − y·p).
    """

    tp: Tensor
    fp: Tensor
    fn: Tensor
    tn: Tensor
    reference_sum: Tensor
    reference_complement_sum: Tensor
    prediction_sum: Tensor
    prediction_complement_sum: Tensor
    union: Tensor

    def sensitivity(self) -> Scores:
        """Sensitivity (recall) = TP / Σy; undefined for an empty reference."""
        return ratio(self.tp, self.reference_sum)

    def specificity(self) -> Scores:
        """Specificity = TN / Σ(1 − y); undefined for a reference that is 1 everywhere."""
        return ratio(self.tn, self.reference_complement_sum)

    def precision(self) -> Scores:
        """Precision (PPV) = TP / Σp; undefined for an empty prediction."""
        return ratio(self.tp, self.prediction_sum)

    def npv(self) -> Scores:
        """Negative predictive value = TN / Σ(1 − p); undefined for a prediction that is 1 everywhere."""
        return ratio(self.tn, self.prediction_complement_sum)

    def iou(self) -> Scores:
        """IoU (Jaccard) = TP / U; undefined when both maps are empty."""
        return ratio(self.tp, self.union)

    def dice(self) -> Scores:
        """Dice = fuzzy F1 = 2·TP / (Σy + Σp); undefined when both maps are empty."""
        return ratio(2 * self.tp, self.reference_sum + self.prediction_sum)


def _tnorm(tnorm: str) -> tuple[Callable[[Tensor, Tensor], Tensor], Callable[[Tensor, Tensor], Tensor]]:
    """The (AND, OR) pair of a t-norm name."""
    if tnorm == "min":
        return torch.minimum, torch.maximum
    if tnorm == "product":
        return torch.mul, lambda a, b: a + b - a * b
    raise ValueError(f"tnorm must be one of {get_args(TNorm)}, got {tnorm!r}")


def fuzzy_confusion(prediction: Tensor, reference: Tensor, *, tnorm: TNorm = "min") -> FuzzyConfusion:
    """Fuzzy TP, FP, FN, TN and marginal sums of ``prediction`` against ``reference`` (module doc).

    Raises ``ValueError`` if either map holds NaN or values outside [0, 1], if the shapes do not
    broadcast, or if ``tnorm`` is unknown.
    """
    and_, or_ = _tnorm(tnorm)
    p = check_unit_interval("prediction", prediction)
    y = check_unit_interval("reference", reference)
    leading = check_pair("prediction", p, "reference", y)
    not_p, not_y = 1 - p, 1 - y

    def total(x: Tensor) -> Tensor:
        return x.sum(dim=_PIXELS).expand(leading)

    return FuzzyConfusion(
        tp=total(and_(y, p)),
        fp=total(and_(not_y, p)),
        fn=total(and_(y, not_p)),
        tn=total(and_(not_y, not_p)),
        reference_sum=total(y),
        reference_complement_sum=total(not_y),
        prediction_sum=total(p),
        prediction_complement_sum=total(not_p),
        union=total(or_(y, p)),
    )


def sensitivity(prediction: Tensor, reference: Tensor, *, tnorm: TNorm = "min") -> Scores:
    """Fuzzy sensitivity TP / Σy of each map (see :func:`fuzzy_confusion`)."""
    return fuzzy_confusion(prediction, reference, tnorm=tnorm).sensitivity()


def specificity(prediction: Tensor, reference: Tensor, *, tnorm: TNorm = "min") -> Scores:
    """Fuzzy specificity TN / Σ(1 − y) of each map (see :func:`fuzzy_confusion`)."""
    return fuzzy_confusion(prediction, reference, tnorm=tnorm).specificity()


def precision(prediction: Tensor, reference: Tensor, *, tnorm: TNorm = "min") -> Scores:
    """Fuzzy precision TP / Σp of each map (see :func:`fuzzy_confusion`)."""
    return fuzzy_confusion(prediction, reference, tnorm=tnorm).precision()


def npv(prediction: Tensor, reference: Tensor, *, tnorm: TNorm = "min") -> Scores:
    """Fuzzy negative predictive value TN / Σ(1 − p) of each map (see :func:`fuzzy_confusion`)."""
    return fuzzy_confusion(prediction, reference, tnorm=tnorm).npv()


def iou(prediction: Tensor, reference: Tensor, *, tnorm: TNorm = "min") -> Scores:
    """Fuzzy IoU TP / Σ max(y, p) (min) or TP / Σ (y + p − y·p) (product) of each map."""
    return fuzzy_confusion(prediction, reference, tnorm=tnorm).iou()


def dice(prediction: Tensor, reference: Tensor, *, tnorm: TNorm = "min") -> Scores:
    """Fuzzy Dice = localization F1 = 2·TP / (Σy + Σp) of each map (see :func:`fuzzy_confusion`)."""
    return fuzzy_confusion(prediction, reference, tnorm=tnorm).dice()
