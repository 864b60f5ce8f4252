r"""Diagnosis sets with a coverage guarantee: split conformal prediction (Vovk et al. 2005; Angelopoulos
& Bates 2021), marginal and per group (Mondrian).

**Scores** of a candidate class ``k`` for an image with probabilities ``p`` (higher: less plausible):

- ``lac`` (Sadinle et al. 2019): ``s(x, k) = 1 − p_k``.
- ``aps`` (Romano et al. 2020): with the classes ordered by decreasing probability (ties: lower class
  index first), ``s(x, k) = Σ_{j ranked at or before k} p_j``, the probability mass down to and
  including ``k``. Randomised, with one uniform ``u ∈ [0, 1)`` per image, ``s(x, k, u) = s(x, k) − u·p_k``.

**Calibration.** On n held-out images with true classes ``y_i`` (never the test images) the scores
``s_i = s(x_i, y_i)`` give the threshold ``q̂ = s_(⌈(n+1)(1−α)⌉)``, the ⌈(n+1)(1−α)⌉-th smallest: the
``⌈(n+1)(1−α)⌉ / n`` empirical quantile with no interpolation. When ⌈(n+1)(1−α)⌉ > n (fewer than
``1/α − 1`` images) ``q̂ = +∞``: every set is every class, which is what the guarantee allows.

**Sets.** ``C(x) = {k : s(x, k) ≤ q̂}``. If calibration and test images are exchangeable,
``P(y ∈ C(x)) ≥ 1 − α`` (marginal coverage, averaged over images and calibration draws); the
randomised APS set can be empty and its coverage is close to exactly 1 − α, the non-randomised sets
are conservative. **Mondrian** (group-conditional) sets use one threshold per group, calibrated on that
group's images, and so hold ``≥ 1 − α`` within every group (Vovk 2012), at the price of larger
sets where the model is worse; a group needs ≥ 1/α − 1 calibration images for a finite threshold.

**MAPIE.** ``SplitConformalClassifier`` (MAPIE 1.x) uses the same order statistic and, for LAC, the
same sets (it compares ``s ≤ q̂`` with a tolerance of 1e-8). Its APS always randomises the
calibration scores as above (``s − u·p_y``, u from its ``random_state``); with
``include_last_label="randomized"`` its sets are ``{k : s(x, k) − u'·p_k ≤ q̂}`` — this module's
randomised APS given the same uniforms. Its default ``include_last_label=True`` adds the class that
crosses q̂ (a larger, still valid set) and ``False`` always keeps the top class; this module's
non-randomised APS is the plain ``{k : s(x, k) ≤ q̂}`` on non-randomised calibration scores, which
MAPIE does not offer. MAPIE breaks probability ties by the higher class index first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from dermx.trust._inputs import ArrayLike, as_double, as_groups, as_labels, as_probs, check_alpha
from dermx.trust.uncertainty import LEVEL, N_BOOT, Clusters, Interval, group_rows, mean_interval, proportion, subset

Score = Literal["lac", "aps"]
"""Conformity score: least ambiguous set-valued classifier, or adaptive prediction sets."""


def random_uniforms(n: int, seed: int) -> Tensor:
    """``n`` float64 uniforms in [0, 1) from a ``torch.Generator`` seeded with ``seed``: the
    randomisation of APS, reproducible."""
    return torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _uniforms(uniforms: ArrayLike | None, n: int, score: Score) -> Tensor | None:
    if uniforms is None:
        return None
    if score != "aps":
        raise ValueError(f"uniforms randomise the 'aps' score only, got score {score!r}")
    u = as_double("uniforms", uniforms, ndim=1)
    if u.shape[0] != n:
        raise ValueError(f"uniforms has {u.shape[0]} values, expected one per row ({n})")
    if u.numel() and (u.min() < 0 or u.max() > 1):
        raise ValueError("uniforms must lie in [0, 1]")
    return u


def label_scores(probs: ArrayLike, score: Score = "lac", *, uniforms: ArrayLike | None = None) -> Tensor:
    """``(n, K)``: the score ``s(x_i, k)`` of every class of every row (module docstring)."""
    p = as_probs(probs)
    u = _uniforms(uniforms, p.shape[0], score)
    if score == "lac":
        return 1 - p
    if score != "aps":
        raise ValueError(f"score must be 'lac' or 'aps', got {score!r}")
    order = torch.sort(p, dim=1, descending=True, stable=True).indices
    mass = torch.empty_like(p).scatter_(1, order, p.gather(1, order).cumsum(1))
    return mass if u is None else mass - u[:, None] * p


def conformity_scores(probs: ArrayLike, labels: ArrayLike, score: Score = "lac", *,
                      uniforms: ArrayLike | None = None) -> Tensor:
    """``(n,)``: the score of each row's true class, ``s(x_i, y_i)``."""
    s = label_scores(probs, score, uniforms=uniforms)
    y = as_labels(labels, s.shape[0], s.shape[1])
    return s.gather(1, y[:, None])[:, 0]


def conformal_quantile(scores: ArrayLike, alpha: float) -> float:
    """``q̂``: the ⌈(n+1)(1−α)⌉-th smallest score, ``+inf`` when that rank exceeds n."""
    s = as_double("scores", scores, ndim=1)
    rank = math.ceil((s.shape[0] + 1) * (1 - check_alpha(alpha)))
    if rank > s.shape[0]:
        return math.inf
    return float(torch.sort(s).values[rank - 1])


def prediction_sets(probs: ArrayLike, threshold: float | Tensor, score: Score = "lac", *,
                    uniforms: ArrayLike | None = None) -> Tensor:
    """``(n, K)`` bool: ``s(x_i, k) ≤ q̂``, with one threshold for all rows or one per row."""
    s = label_scores(probs, score, uniforms=uniforms)
    q = torch.as_tensor(threshold, dtype=torch.float64)
    return s <= (q[:, None] if q.ndim == 1 else q)


@dataclass(frozen=True)
class Threshold:
    """A calibrated threshold ``q̂`` from ``n`` calibration rows (``+inf`` when n < 1/α − 1)."""

    value: float
    n: int


@dataclass(frozen=True)
class ConformalCalibration:
    """Split conformal calibration at error rate ``alpha`` with ``score``: the marginal threshold and, when
    calibrated with groups, one per group (Mondrian)."""

    score: Score
    alpha: float
    marginal: Threshold
    by_group: dict[str, Threshold] = field(default_factory=dict)

    def thresholds(self, n: int, groups: Sequence[Any] | np.ndarray | None = None) -> Tensor:
        """``(n,)``: each row's threshold, its group's when ``groups`` is given (a group without a
        threshold is an error, naming it), else the marginal one."""
        if groups is None:
            return torch.full((n,), self.marginal.value, dtype=torch.float64)
        if not self.by_group:
            raise ValueError("groups given, but this calibration has no per-group thresholds")
        g = as_groups(groups, n)
        unknown = sorted(set(g.tolist()) - set(self.by_group))
        if unknown:
            raise ValueError(f"no conformal threshold for group(s) {unknown}; calibrated: {sorted(self.by_group)}")
        return torch.tensor([self.by_group[name].value for name in g], dtype=torch.float64)

    def sets(self, probs: ArrayLike, groups: Sequence[Any] | np.ndarray | None = None, *,
             uniforms: ArrayLike | None = None) -> Tensor:
        """``(n, K)`` bool diagnosis sets: Mondrian with ``groups``, marginal without."""
        p = as_probs(probs)
        return prediction_sets(p, self.thresholds(p.shape[0], groups), self.score, uniforms=uniforms)


def calibrate_sets(probs: ArrayLike, labels: ArrayLike, alpha: float, score: Score = "lac",
              groups: Sequence[Any] | np.ndarray | None = None, *,
              uniforms: ArrayLike | None = None) -> ConformalCalibration:
    """Calibrate on held-out rows: the marginal threshold and, with ``groups``, one per group."""
    s = conformity_scores(probs, labels, score, uniforms=uniforms)
    marginal = Threshold(conformal_quantile(s, alpha), int(s.shape[0]))
    if groups is None:
        return ConformalCalibration(score=score, alpha=alpha, marginal=marginal)
    g = as_groups(groups, s.shape[0])
    by_group = {name: Threshold(conformal_quantile(s[torch.from_numpy(rows)], alpha), len(rows))
                for name, rows in group_rows(g).items()}
    return ConformalCalibration(score=score, alpha=alpha, marginal=marginal, by_group=by_group)


@dataclass(frozen=True)
class SetQuality:
    """How the sets of some rows did: ``coverage`` (share holding the true class, Wilson CI),
    ``mean_size`` (classes per set, bootstrap CI over patients when clusters are given) and
    ``n_empty`` sets."""

    coverage: Interval
    mean_size: Interval
    n_empty: int


@dataclass(frozen=True)
class CoverageReport:
    """Set quality over all rows and per group; ``worst_group`` has the lowest coverage (``None``
    without groups)."""

    overall: SetQuality
    by_group: dict[str, SetQuality]
    worst_group: str | None


def _quality(covered: Tensor, sizes: Tensor, clusters: Clusters, n_boot: int, seed: int, level: float) -> SetQuality:
    return SetQuality(coverage=proportion(int(covered.sum()), int(covered.numel()), level=level),
                      mean_size=mean_interval(sizes, clusters=clusters, n_boot=n_boot, seed=seed, level=level),
                      n_empty=int((sizes == 0).sum()))


def coverage_report(sets: Tensor, labels: ArrayLike, groups: Sequence[Any] | np.ndarray | None = None, *,
                    clusters: Clusters = None, n_boot: int = N_BOOT, seed: int = 0,
                    level: float = LEVEL) -> CoverageReport:
    """Empirical coverage ``(1/n) Σ [y_i ∈ C(x_i)]`` and mean set size ``(1/n) Σ |C(x_i)|`` of test
    ``sets`` ``(n, K)``, overall and per group, with intervals (:mod:`dermx.trust.uncertainty`)."""
    if sets.ndim != 2 or sets.dtype != torch.bool:
        raise ValueError(f"sets must be a (n, K) bool tensor, got {sets.dtype} of shape {tuple(sets.shape)}")
    y = as_labels(labels, sets.shape[0], sets.shape[1])
    covered = sets.gather(1, y[:, None])[:, 0].double()
    sizes = sets.sum(1).double()
    overall = _quality(covered, sizes, clusters, n_boot, seed, level)
    if groups is None:
        return CoverageReport(overall=overall, by_group={}, worst_group=None)
    by_group = {}
    for name, rows in group_rows(as_groups(groups, sets.shape[0])).items():
        index = torch.from_numpy(rows)
        by_group[name] = _quality(covered[index], sizes[index], subset(clusters, rows), n_boot, seed, level)
    worst = min(by_group, key=lambda name: by_group[name].coverage.estimate)
    return CoverageReport(overall=overall, by_group=by_group, worst_group=worst)
