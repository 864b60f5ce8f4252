"""Per-item metric values that keep track of which items are undefined."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Scores:
    """Values of one metric for a batch of items, NaN where the metric is undefined.

    ``values`` has the broadcast leading shape of the inputs (the pixel dims are reduced away);
    ``undefined`` is a boolean tensor of the same shape, true where ``values`` is NaN because the
    metric's denominator was 0 (e.g. sensitivity on an empty reference). Undefined items are
    reported, never silently turned into 0: aggregate with :func:`dermx.metrics.summarize`, which
    counts them.
    """

    values: Tensor
    undefined: Tensor

    @property
    def n(self) -> int:
        """Number of items, defined or not."""
        return self.values.numel()

    @property
    def n_undefined(self) -> int:
        """Number of undefined (NaN) items."""
        return int(self.undefined.sum().item())


def mark_undefined(values: Tensor, undefined: Tensor) -> Scores:
    """Scores with ``values`` replaced by NaN where the boolean mask ``undefined`` is true."""
    return Scores(values=torch.where(undefined, torch.full_like(values, float("nan")), values), undefined=undefined)


def ratio(numerator: Tensor, denominator: Tensor) -> Scores:
    """``numerator / denominator`` element-wise, NaN (and flagged undefined) where ``denominator == 0``.

    Denominators here are sums of non-negative memberships, so they are 0 exactly when every
    summed term is 0.
    """
    undefined = denominator == 0
    safe = torch.where(undefined, torch.ones_like(denominator), denominator)
    return mark_undefined(numerator / safe, undefined)
