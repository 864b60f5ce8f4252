"""Input checks shared by the trust functions: arrays of logits, probabilities, labels and groups as
float64 / int64 CPU tensors, with ``ValueError`` messages that name the argument and the problem."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

ArrayLike = Tensor | np.ndarray | Sequence[Any]
"""A tensor, a NumPy array or a (nested) sequence of numbers."""

#: How far a row of probabilities may sum from 1 (float32 softmax outputs pass).
ROW_SUM_TOLERANCE = 1e-4


def as_double(name: str, x: ArrayLike, *, ndim: int) -> Tensor:
    """``x`` as a finite float64 CPU tensor with ``ndim`` dims."""
    t = x.detach() if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float64))
    t = t.to(device="cpu", dtype=torch.float64)
    if t.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dim(s), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def as_logits(logits: ArrayLike) -> Tensor:
    """``(n, K)`` float64 logits, n ≥ 1 and K ≥ 2."""
    z = as_double("logits", logits, ndim=2)
    if z.shape[0] == 0 or z.shape[1] < 2:
        raise ValueError(f"logits must be (n, K) with n >= 1 and K >= 2, got shape {tuple(z.shape)}")
    return z


def as_probs(probs: ArrayLike) -> Tensor:
    """``(n, K)`` float64 probabilities: n ≥ 1, K ≥ 2, every value in [0, 1], rows summing to 1."""
    p = as_double("probs", probs, ndim=2)
    if p.shape[0] == 0 or p.shape[1] < 2:
        raise ValueError(f"probs must be (n, K) with n >= 1 and K >= 2, got shape {tuple(p.shape)}")
    if p.min() < 0 or p.max() > 1:
        raise ValueError(f"probs must lie in [0, 1], found values in [{p.min().item():g}, {p.max().item():g}]")
    worst = (p.sum(1) - 1).abs().max().item()
    if worst > ROW_SUM_TOLERANCE:
        raise ValueError(f"rows of probs must sum to 1, one is off by {worst:.3g} (pass softmax outputs, not logits)")
    return p


def as_labels(labels: ArrayLike, n: int, k: int, name: str = "labels") -> Tensor:
    """``(n,)`` int64 class indices in ``[0, k)``."""
    y = labels.detach().cpu() if isinstance(labels, Tensor) else torch.as_tensor(np.asarray(labels))
    if y.shape != (n,):
        raise ValueError(f"{name} has shape {tuple(y.shape)}, expected one class index per row ({n},)")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"{name} must be integer class indices, got dtype {y.dtype}")
    y = y.long()
    if n and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"{name} must lie in [0, {k}), found values in [{y.min().item()}, {y.max().item()}]")
    return y


def as_groups(groups: Sequence[Any] | np.ndarray, n: int, name: str = "groups") -> np.ndarray:
    """``(n,)`` array of group names (``str``): each row's stratum (skin tone, age group, ...)."""
    g = np.asarray(groups, dtype=object)
    if g.shape != (n,):
        raise ValueError(f"{name} has shape {g.shape}, expected one group per row ({n},)")
    missing = [i for i, v in enumerate(g) if v is None or (isinstance(v, float) and np.isnan(v))]
    if missing:
        raise ValueError(f"{name} has {len(missing)} missing value(s) (first at row {missing[0]}); "
                         "name a group for every row or leave those rows out and count them")
    return g.astype(str)


def check_alpha(alpha: float) -> float:
    """An error rate in (0, 1)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return float(alpha)
