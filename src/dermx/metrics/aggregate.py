"""NaN-aware aggregates that say how many values they averaged and how many were undefined.

Undefined metric values are NaN (see :class:`~dermx.metrics.Scores`). They are left out of every
statistic below and counted, never replaced by 0. Bootstrap intervals resample rows, or whole clusters
of rows (:func:`resample_counts`: the patient when rows are images); proportions of small groups have
Wilson's score interval (:func:`wilson_interval`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

Values = Tensor | np.ndarray | Sequence[float]
"""Metric values: a tensor, an array or a sequence of floats; NaN marks an undefined value."""


def _as_double(name: str, values: Values) -> Tensor:
    """``values`` as a float64 CPU tensor (at least 1-D), rejecting infinities."""
    x = values if isinstance(values, Tensor) else torch.from_numpy(np.array(values, dtype=np.float64))  # a copy
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


#: Resamples drawn and evaluated at once by :func:`resample_blocks` (memory ``O(BLOCK · n)``).
BLOCK = 100


def resample_blocks(n: int, *, n_boot: int, seed: int, clusters: Sequence[Any] | np.ndarray | None = None,
                    block: int = BLOCK) -> Iterator[Tensor]:
    """The rows of :func:`resample_counts`, ``block`` resamples at a time: the same draws (the generator's
    stream is consumed in row order, so blocks of any size concatenate to the whole matrix), without
    holding all ``n_boot × n`` counts. A statistic evaluated block by block needs ``O(block · n)`` memory,
    whatever ``n_boot``."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if n == 0:
        raise ValueError("values is empty: nothing to resample")
    generator = torch.Generator().manual_seed(seed)
    if clusters is None:
        codes, k = torch.arange(n), n
    else:
        labels = np.asarray(clusters, dtype=object)
        if labels.shape != (n,):
            raise ValueError(f"clusters has shape {labels.shape}, expected one label per row ({n},)")
        _, inverse = np.unique(labels.astype(str), return_inverse=True)
        codes, k = torch.from_numpy(inverse.reshape(-1)), int(inverse.max()) + 1
    for start in range(0, n_boot, block):
        rows = min(block, n_boot - start)
        drawn = torch.zeros(rows, k, dtype=torch.float64)
        draws = torch.randint(k, (rows, k), generator=generator)
        drawn.scatter_add_(1, draws, torch.ones(1, 1, dtype=torch.float64).expand(rows, k))
        del draws
        yield drawn[:, codes]


def resample_counts(n: int, *, n_boot: int, seed: int, clusters: Sequence[Any] | np.ndarray | None = None) -> Tensor:
    """``(n_boot, n)`` float64: how many times each of ``n`` rows is in each bootstrap resample.

    Without ``clusters`` the rows are drawn with replacement, ``n`` draws per resample. With
    ``clusters`` (one label per row, e.g. each image's patient) the K distinct labels are drawn with
    replacement, K draws per resample, and every row counts as many times as its cluster was drawn:
    the cluster bootstrap, for rows that are not independent (two images of one patient go in and out
    together). Draws come from a ``torch.Generator`` seeded by ``seed``: same seed, same resamples.
    :func:`resample_blocks` gives the same rows a block at a time.
    """
    return torch.cat(list(resample_blocks(n, n_boot=n_boot, seed=seed, clusters=clusters, block=n_boot)))


def resampled(statistic: Callable[[Tensor], Tensor], n: int, *, n_boot: int, seed: int,
              clusters: Sequence[Any] | np.ndarray | None = None, dim: int = 0) -> Tensor:
    """``statistic(counts)`` of the ``(n_boot, n)`` counts of :func:`resample_counts`, evaluated on
    :func:`resample_blocks` and concatenated along ``dim`` (where ``statistic`` puts the resamples):
    the values of one call on the whole matrix, in ``O(BLOCK · n)`` memory."""
    return torch.cat([statistic(counts) for counts in resample_blocks(n, n_boot=n_boot, seed=seed,
                                                                       clusters=clusters)], dim=dim)


def percentile_interval(resampled: Tensor, level: float) -> tuple[Tensor, Tensor]:
    """The ``(1 − level)/2`` and ``(1 + level)/2`` quantiles of resampled statistics (first dim), NaN
    resamples ignored: the percentile bootstrap interval."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    quantiles = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    low, high = torch.nanquantile(resampled, quantiles, dim=0)
    return low, high


def bootstrap_ci(values: Values, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95,
                 clusters: Sequence[Any] | np.ndarray | None = None) -> BootstrapCI:
    """Percentile bootstrap CI of the NaN-aware mean of ``values`` over its first dim.

    Rows (first dim) are resampled with replacement ``n_boot`` times (:func:`resample_counts`; with
    ``clusters``, whole clusters of rows are). Each resample's statistic is, per trailing position,
    ``Σ_i c_i·v_i / Σ_i c_i·[v_i defined]`` with ``c_i`` the number of times row ``i`` was drawn and
    NaN rows left out; the interval is the ``(1 − level)/2`` and ``(1 + level)/2`` quantiles of the
    resampled statistics (resamples with no defined value are ignored). The resamples are
    ``(n_boot, n)`` count matrices times the ``(n, ...)`` values, :data:`BLOCK` resamples at a time
    (:func:`resampled`).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    x = _as_double("values", values)
    n = x.shape[0]
    if n == 0:
        raise ValueError("values is empty: nothing to resample")
    flat = x.reshape(n, -1)
    defined = ~torch.isnan(flat)
    filled = torch.where(defined, flat, 0.0)
    weights = defined.double()
    means = resampled(lambda counts: (counts @ filled) / (counts @ weights), n, n_boot=n_boot, seed=seed,
                      clusters=clusters)
    low, high = percentile_interval(means, level)
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
    values_a: Values, values_b: Values, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95,
    clusters: Sequence[Any] | np.ndarray | None = None,
) -> BootstrapCI:
    """Paired bootstrap CI of the mean difference ``a − b`` of two aligned value arrays.

    Rows are items scored by both methods; the differences ``d_i = a_i − b_i`` are resampled as in
    :func:`bootstrap_ci` (rows, or ``clusters`` of rows, drawn jointly, so the pairing is kept). A pair
    is undefined, and counted in ``n_undefined``, when either value is NaN.
    """
    a, b = _as_double("values_a", values_a), _as_double("values_b", values_b)
    if a.shape != b.shape:
        raise ValueError(f"values_a shape {tuple(a.shape)} and values_b shape {tuple(b.shape)} differ")
    return bootstrap_ci(a - b, n_boot=n_boot, seed=seed, level=level, clusters=clusters)


def pearson(a: Tensor, b: Tensor, weights: Tensor | None = None) -> Tensor:
    """Pearson's r of ``a`` and ``b`` over the last dim, each position weighted by ``weights`` (broadcast
    against them; e.g. how many times a bootstrap resample drew it):
    ``r = Σ w·(a − ā)(b − b̄) / √(Σ w·(a − ā)² · Σ w·(b − b̄)²)`` with weighted means ``ā``, ``b̄``.
    NaN where either side is constant."""
    w = torch.ones_like(a) if weights is None else weights
    total = w.sum(dim=-1, keepdim=True)
    da = a - (w * a).sum(dim=-1, keepdim=True) / total
    db = b - (w * b).sum(dim=-1, keepdim=True) / total
    spread = (w * da * da).sum(dim=-1) * (w * db * db).sum(dim=-1)
    return torch.where(spread > 0, (w * da * db).sum(dim=-1) / spread.clamp_min(1e-300).sqrt(),
                       torch.full_like(spread, math.nan))


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval of a proportion ``successes / n`` (NaN, NaN when n = 0)::

        (p̂ + z²/2n ± z·√(p̂(1 − p̂)/n + z²/4n²)) / (1 + z²/n),   z = Φ⁻¹((1 + level)/2)

    It stays inside [0, 1] and keeps a width at 0 / n and n / n, where a percentile bootstrap of a small
    stratum collapses to a point. It treats the n trials as independent.
    """
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return math.nan, math.nan
    z = float(torch.special.ndtri(torch.tensor((1 + level) / 2, dtype=torch.float64)))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
