"""Intervals of trust figures, overall and per group, on the project's statistics
(:mod:`dermx.metrics.aggregate`).

- A **mean of per-image values** (set size, 0/1 correctness) gets the percentile bootstrap CI of
  :func:`dermx.metrics.bootstrap_ci`; with ``clusters`` (each image's patient) whole patients are
  resampled, so two images of one patient go in and out together.
- A **statistic of the rows as a whole** (ECE, Brier, AURC, ...) is recomputed on each resample of
  :func:`dermx.metrics.resample_counts` (patients when ``clusters`` is given), the rows of a resample
  repeated as many times as they were drawn, and the interval is the percentile one
  (:func:`dermx.metrics.percentile_interval`).
- A **proportion** (coverage of a set, share of abstentions) gets Wilson's score interval
  (:func:`dermx.metrics.wilson_interval`), which keeps a width at 0 / n and n / n; it treats the images
  as independent.

Each :class:`Interval` names its unit of resampling.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dermx.metrics import bootstrap_ci, percentile_interval, resample_counts, resampled, wilson_interval
from dermx.trust._inputs import as_groups

Clusters = Sequence[Any] | np.ndarray | None
"""Each row's patient (rows of one patient are resampled together), or ``None``: each row its own."""

#: Default confidence level and bootstrap size.
LEVEL = 0.95
N_BOOT = 1000


@dataclass(frozen=True)
class Interval:
    """An estimate with its ``level`` interval ``[low, high]`` over ``n`` rows; ``unit`` says what was
    resampled (``"patient"``, ``"image"``) or ``"image (Wilson)"`` for a proportion."""

    estimate: float
    low: float
    high: float
    n: int
    level: float
    unit: str


def _unit(clusters: Clusters) -> str:
    return "image" if clusters is None else "patient"


def proportion(successes: int, n: int, *, level: float = LEVEL) -> Interval:
    """``successes / n`` with Wilson's score interval (NaN when n = 0)."""
    low, high = wilson_interval(successes, n, level)
    return Interval(estimate=successes / n if n else math.nan, low=low, high=high, n=n, level=level,
                    unit="image (Wilson)")


def mean_interval(values: Tensor | np.ndarray, *, clusters: Clusters = None, n_boot: int = N_BOOT, seed: int = 0,
                  level: float = LEVEL) -> Interval:
    """Mean of per-row ``values`` with its bootstrap CI (patients resampled with ``clusters``)."""
    ci = bootstrap_ci(values, n_boot=n_boot, seed=seed, level=level, clusters=clusters)
    return Interval(estimate=float(ci.estimate), low=float(ci.low), high=float(ci.high), n=ci.n, level=level,
                    unit=_unit(clusters))


def statistic_interval(statistic: Callable[[Tensor], float], n: int, *, clusters: Clusters = None,
                       n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> Interval:
    """``statistic(rows)`` on all ``n`` rows (``rows = arange(n)``) with its percentile bootstrap CI: on
    each resample ``statistic`` gets the row indices drawn, each repeated as often as it was drawn."""
    counts = resample_counts(n, n_boot=n_boot, seed=seed, clusters=clusters).long()
    everything = torch.arange(n)
    values = torch.tensor([statistic(torch.repeat_interleave(everything, c)) for c in counts], dtype=torch.float64)
    low, high = percentile_interval(values, level)
    return Interval(estimate=float(statistic(everything)), low=float(low), high=float(high), n=n, level=level,
                    unit=_unit(clusters))


def weighted_interval(statistic: Callable[[Tensor], Tensor], n: int, *, clusters: Clusters = None,
                      n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> Interval:
    """:func:`statistic_interval` for a statistic that takes row weights: ``statistic(w)`` maps ``(B, n)``
    weights to ``(B,)`` values at once, where a resample's weights are how often each row was drawn (the
    same draws as :func:`statistic_interval`, so the same interval, without a Python loop per resample).
    ``statistic`` gets the resamples a block at a time (:func:`dermx.metrics.resampled`), so its own
    temporaries stay ``O(block · n)``."""
    low, high = percentile_interval(resampled(statistic, n, n_boot=n_boot, seed=seed, clusters=clusters), level)
    estimate = float(statistic(torch.ones(1, n, dtype=torch.float64))[0])
    return Interval(estimate=estimate, low=float(low), high=float(high), n=n, level=level, unit=_unit(clusters))


def group_rows(groups: np.ndarray) -> dict[str, np.ndarray]:
    """The row indices of each group, groups in sorted order."""
    return {name: np.flatnonzero(groups == name) for name in sorted(set(groups.tolist()))}


def strata(groups: Sequence[Any] | np.ndarray | None, n: int) -> dict[str, np.ndarray]:
    """The rows of ``"all"`` and, with ``groups``, of each group (a group may not be called ``"all"``)."""
    parts = {"all": np.arange(n)}
    if groups is not None:
        named = group_rows(as_groups(groups, n))
        if "all" in named:
            raise ValueError("a group is named 'all', which names every row here; rename it")
        parts.update(named)
    return parts


def subset(clusters: Clusters, rows: np.ndarray) -> Clusters:
    """The patients of ``rows`` (``None`` stays ``None``)."""
    return None if clusters is None else np.asarray(clusters, dtype=object)[rows]
