"""NaN-aware aggregates that say how many values they averaged and how many were undefined.

Undefined metric values are NaN (see :class:`~dermx.metrics.Scores`). They are left out of every
statistic below and counted, never replaced by 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

Values = Tensor | np.ndarray | Sequence[float]
"""Metric values: a tensor, an array or a sequence of floats; NaN marks an undefined value."""


def _as_double(name: str, values: Values) -> Tensor:
    """``values`` as a float64 CPU tensor (at least 1-D), rejecting infinities."""
    x = values if isinstance(values, Tensor) else torch.as_tensor(np.asarray(values, dtype=np.float64))
    x = x.detach().to(device="cpu", dtype=torch.float64)
    if x.ndim == 0:
        x = x.reshape(1)
    if torch.isinf(x).any():
        raise ValueError(f"{name} contains infinite values")
    return x


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation of the defined values.

    ``mean = Σ v / n`` and ``sd = √(Σ (v − mean)² / (n − 1))`` (ddof = 1) over the ``n`` defined
    values; ``n_undefined`` values were NaN and left out. ``mean`` is NaN when n = 0, ``sd`` when
    n < 2.
    """

    mean: float
    sd: float
    n: int
    n_undefined: int


def summarize(values: Values) -> Summary:
    """Summarise all elements of ``values`` (any shape) into a :class:`Summary`, ignoring NaN."""
    x = _as_double("values", values).flatten()
    defined = x[~torch.isnan(x)]
    n = defined.numel()
    mean = defined.mean().item() if n else math.nan
    sd = defined.std(correction=1).item() if n > 1 else math.nan
    return Summary(mean=mean, sd=sd, n=n, n_undefined=x.numel() - n)


@dataclass(frozen=True)
class BootstrapCI:
    """Percentile bootstrap confidence interval of a NaN-aware mean, per trailing position.

    ``estimate``, ``low`` and ``high`` have the trailing shape of the values (0-d for 1-D values);
    ``n`` is the number of resampled rows (first dim); ``n_undefined`` counts the NaN rows at each
    trailing position (a tensor of the trailing shape); ``n_boot`` and ``level`` are as requested.
    """

    estimate: Tensor
    low: Tensor
    high: Tensor
    n: int
    n_undefined: Tensor
    n_boot: int
    level: float


def bootstrap_ci(values: Values, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> BootstrapCI:
    """Percentile bootstrap CI of the NaN-aware mean of ``values`` over its first dim.

    Rows (first dim) are resampled with replacement ``n_boot`` times with a ``torch.Generator``
    seeded by ``seed`` (same seed, same result). Each resample's statistic is, per trailing position,
    ``Σ_i c_i·v_i / Σ_i c_i·[v_i defined]`` with ``c_i`` the number of times row ``i`` was drawn and
    NaN rows left out; the interval is the ``(1 − level)/2`` and ``(1 + level)/2`` quantiles of the
    resampled statistics (resamples with no defined value are ignored). All resamples at once as one
    ``(n_boot, n)`` count matrix times the ``(n, ...)`` values.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    x = _as_double("values", values)
    n = x.shape[0]
    if n == 0:
        raise ValueError("values is empty: nothing to resample")
    flat = x.reshape(n, -1)
    defined = ~torch.isnan(flat)
    filled = torch.where(defined, flat, 0.0)
    generator = torch.Generator().manual_seed(seed)
    draws = torch.randint(n, (n_boot, n), generator=generator)
    counts = torch.zeros(n_boot, n, dtype=torch.float64)
    counts.scatter_add_(1, draws, torch.ones_like(counts))
    means = (counts @ filled) / (counts @ defined.double())
    quantiles = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    low, high = torch.nanquantile(means, quantiles, dim=0)
    estimate = filled.sum(0) / defined.sum(0)
    trailing = x.shape[1:]
    return BootstrapCI(
        estimate=estimate.reshape(trailing),
        low=low.reshape(trailing),
        high=high.reshape(trailing),
        n=n,
        n_undefined=(~defined).sum(0).reshape(trailing),
        n_boot=n_boot,
        level=level,
    )


def paired_bootstrap_ci(
    values_a: Values, values_b: Values, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> BootstrapCI:
    """Paired bootstrap CI of the mean difference ``a − b`` of two aligned value arrays.

    Rows are items scored by both methods; the differences ``d_i = a_i − b_i`` are resampled as in
    :func:`bootstrap_ci` (rows drawn jointly, so the pairing is kept). A pair is undefined, and
    counted in ``n_undefined``, when either value is NaN.
    """
    a, b = _as_double("values_a", values_a), _as_double("values_b", values_b)
    if a.shape != b.shape:
        raise ValueError(f"values_a shape {tuple(a.shape)} and values_b shape {tuple(b.shape)} differ")
    return bootstrap_ci(a - b, n_boot=n_boot, seed=seed, level=level)
