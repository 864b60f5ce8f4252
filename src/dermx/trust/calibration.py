r"""Calibration of class probabilities: temperature scaling and the errors it is judged by.

Notation: ``n`` rows (images), ``K`` classes, probabilities ``p_ik`` (rows sum to 1), true class
``y_i``; the confidence of row ``i`` is ``c_i = max_k p_ik`` and it is correct when
``ŷ_i = argmax_k p_ik`` equals ``y_i`` (ties: the lowest class index).

**Errors.**

- ``nll = −(1/n) Σ_i log p_{i,y_i}`` (natural log; ``+inf`` when a true class has probability 0).
- ``brier = (1/n) Σ_i Σ_k (p_ik − [y_i = k])²``: the multi-class Brier score (Brier 1950, summed over
  classes, so it lies in [0, 2]).
- ``ece = Σ_b (n_b / n) · |acc_b − conf_b|`` over M bins of the confidence, with ``acc_b`` the share
  of correct rows of bin ``b`` and ``conf_b`` their mean confidence; empty bins contribute 0.
- ``classwise_ece = (1/K) Σ_k ECE_k`` (Kull et al. 2019), ``ECE_k`` being the same sum over bins of
  ``p_ik`` against the indicator ``[y_i = k]`` (every row, every class).

**Bins.** Bin ``b`` is the half-open interval ``[e_b, e_{b+1})``, the last one closed at 1.
``binning="width"``: ``e_b = b / M``, equal-width bins. ``binning="mass"``: ``e_b`` is the
``b/M`` quantile of the binned values (linear interpolation between order statistics, NumPy's default),
with ``e_0 = 0`` and ``e_M = 1``, so each bin holds about n / M rows (rows on an interior edge go to
the upper bin; tied values can leave a bin empty).

These conventions are those of netcal's ``ECE`` (``equal_intervals=True`` / ``False``); torchmetrics'
``MulticlassCalibrationError`` (norm ``"l1"``) uses the same equal-width bins except that a confidence
of exactly 1.0 gets a bin of its own there, and it computes in float32 (differences of order 1e-7).

**Temperature scaling** (Guo et al. 2017): probabilities ``softmax(z_i / T)`` with one temperature
``T > 0`` fitted on validation logits by minimising ``nll``. With ``β = 1/T``,
``nll(β) = (1/n) Σ_i [logsumexp_k(β z_ik) − β z_{i,y_i}]`` is convex in β, so a bounded 1-D search
finds its one minimum: Brent's bounded method (SciPy ``minimize_scalar``) over ``log T`` in
``[log T_min, log T_max]``. Data the model separates perfectly push T towards 0; the fit then stops at
the bound and says so (``at_bound``; also when the NLL is flat at 0 down to a bound, the classes
being separated to machine precision). Temperature scaling never changes the top-1 class.
One temperature per group (skin tone, ...) is the same fit on each group's rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from torch import Tensor

from dermx.trust._inputs import ArrayLike, as_groups, as_labels, as_logits, as_probs
from dermx.trust.uncertainty import (
    LEVEL,
    N_BOOT,
    Clusters,
    Interval,
    mean_interval,
    strata,
    subset,
    weighted_interval,
)

Binning = Literal["width", "mass"]
"""Confidence bins of equal width (``width``) or holding equal numbers of rows (``mass``)."""

#: Default number of bins (torchmetrics' default).
N_BINS = 15
#: Search interval of the temperature.
T_BOUNDS = (0.05, 20.0)


def _probs_labels(probs: ArrayLike, labels: ArrayLike) -> tuple[Tensor, Tensor]:
    p = as_probs(probs)
    return p, as_labels(labels, p.shape[0], p.shape[1])


def nll(probs: ArrayLike, labels: ArrayLike) -> float:
    """Negative log-likelihood ``−(1/n) Σ log p_{i,y_i}`` (module docstring)."""
    return float(_row_nll(*_probs_labels(probs, labels)).mean())


def brier(probs: ArrayLike, labels: ArrayLike) -> float:
    """Multi-class Brier score ``(1/n) Σ_i Σ_k (p_ik − [y_i = k])²`` (module docstring)."""
    return float(_row_brier(*_probs_labels(probs, labels)).mean())


@dataclass(frozen=True)
class Reliability:
    """The bins of a reliability diagram.

    ``edges`` ``(M + 1,)``; per bin: ``count`` rows, their mean ``confidence`` and the share of them
    that were correct (``accuracy``), both NaN for an empty bin. ``ece`` is
    ``Σ_b (count_b / n) |accuracy_b − confidence_b|`` over the non-empty bins.
    """

    edges: Tensor
    count: Tensor
    confidence: Tensor
    accuracy: Tensor

    @property
    def ece(self) -> float:
        used = self.count > 0
        gaps = (self.accuracy[used] - self.confidence[used]).abs()
        return float((self.count[used] * gaps).sum() / self.count.sum())


def _edges(values: Tensor, n_bins: int, binning: Binning) -> Tensor:
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    levels = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    if binning == "width":
        return levels
    if binning == "mass":
        edges = torch.quantile(values, levels)
        edges[0], edges[-1] = 0.0, 1.0
        return edges
    raise ValueError(f"binning must be 'width' or 'mass', got {binning!r}")


def reliability_bins(values: Tensor, outcomes: Tensor, *, n_bins: int = N_BINS,
                     binning: Binning = "width") -> Reliability:
    """Bin ``values`` (probabilities in [0, 1]) and the 0/1 ``outcomes`` they predict (module docstring:
    half-open bins, the last closed at 1)."""
    edges = _edges(values, n_bins, binning)
    index = (torch.bucketize(values.contiguous(), edges, right=True) - 1).clamp(0, n_bins - 1)
    count = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, index, torch.ones_like(values))
    conf_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, index, values)
    acc_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, index, outcomes.double())
    return Reliability(edges=edges, count=count, confidence=conf_sum / count, accuracy=acc_sum / count)


def _top_label(p: Tensor, y: Tensor, n_bins: int, binning: Binning) -> Reliability:
    confidence, predicted = p.max(1)
    return reliability_bins(confidence, predicted == y, n_bins=n_bins, binning=binning)


def _classwise(p: Tensor, y: Tensor, n_bins: int, binning: Binning) -> float:
    return float(np.mean([reliability_bins(p[:, k], y == k, n_bins=n_bins, binning=binning).ece
                          for k in range(p.shape[1])]))


def _width_ece_of_weights(values: Tensor, outcomes: Tensor, n_bins: int) -> Callable[[Tensor], Tensor]:
    """Equal-width ECE of ``values`` (``(n,)`` or ``(n, K)``: one column per class, averaged) as a function
    of row weights ``(B, n)``: ``Σ_b |Σ_{i∈b} w_i (o_i − v_i)| / Σ_i w_i``, which is
    ``Σ_b (count_b / n) |accuracy_b − confidence_b|`` on the rows repeated as weighted. Equal-width bins do
    not depend on the rows drawn, so every resample is one matrix product."""
    v = values.reshape(values.shape[0], -1)
    o = outcomes.reshape(v.shape).double()
    index = (torch.bucketize(v.contiguous(), _edges(v, n_bins, "width"), right=True) - 1).clamp(0, n_bins - 1)
    columns = index + n_bins * torch.arange(v.shape[1])  # (n, K): one block of bins per class
    spread = torch.zeros(v.shape[0], v.shape[1] * n_bins, dtype=torch.float64)
    spread.scatter_(1, columns, o - v)

    def ece_of(weights: Tensor) -> Tensor:
        per_bin = (weights @ spread).abs().reshape(weights.shape[0], v.shape[1], n_bins).sum(dim=2)
        return (per_bin / weights.sum(dim=1, keepdim=True)).mean(dim=1)

    return ece_of


def _mass_ece_of_weights(values: Tensor, outcomes: Tensor, n_bins: int) -> Callable[[Tensor], Tensor]:
    """Equal-mass ECE of ``values`` ``(n,)`` against 0/1 ``outcomes`` as a function of row weights ``(B, n)``,
    every resample at once. The edges follow the rows drawn: on the rows sorted by value, with cumulative
    weights ``W_j`` and ``N = Σ w``, the ``q`` quantile of the repeated rows interpolates between the values
    at positions ``⌊q (N − 1)⌋`` and the next one, the row at position ``r`` being the first with ``W_j > r``
    (NumPy's linear quantile on the repeated rows); then ``Σ_b |Σ_{i∈b} w_i (o_i − v_i)| / N``."""
    order = torch.argsort(values, stable=True)
    v, gap = values[order].contiguous(), (outcomes[order].double() - values[order])
    levels = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)

    def ece_of(weights: Tensor) -> Tensor:
        w = weights[:, order].contiguous()
        cumulative, total = w.cumsum(dim=1), w.sum(dim=1, keepdim=True)
        position = levels * (total - 1)
        below = position.floor()
        above = torch.minimum(below + 1, total - 1)
        low = v[torch.searchsorted(cumulative, below.contiguous(), right=True).clamp(max=len(v) - 1)]
        high = v[torch.searchsorted(cumulative, above.contiguous(), right=True).clamp(max=len(v) - 1)]
        edges = low + (position - below) * (high - low)
        edges[:, 0], edges[:, -1] = 0.0, 1.0
        index = (torch.searchsorted(edges, v.expand(len(w), -1).contiguous(), right=True) - 1).clamp(0, n_bins - 1)
        per_bin = torch.zeros(len(w), n_bins, dtype=torch.float64).scatter_add_(1, index, w * gap)
        return per_bin.abs().sum(dim=1) / total[:, 0]

    return ece_of


def reliability(probs: ArrayLike, labels: ArrayLike, *, n_bins: int = N_BINS,
                binning: Binning = "width") -> Reliability:
    """Top-label reliability bins: confidence ``max_k p_ik`` against ``[argmax_k p_ik = y_i]``."""
    return _top_label(*_probs_labels(probs, labels), n_bins, binning)


def ece(probs: ArrayLike, labels: ArrayLike, *, n_bins: int = N_BINS, binning: Binning = "width") -> float:
    """Expected calibration error of the top label (module docstring)."""
    return reliability(probs, labels, n_bins=n_bins, binning=binning).ece


def classwise_ece(probs: ArrayLike, labels: ArrayLike, *, n_bins: int = N_BINS,
                  binning: Binning = "width") -> float:
    """Class-wise ECE ``(1/K) Σ_k ECE_k``: each class's probability against its indicator, every row."""
    return _classwise(*_probs_labels(probs, labels), n_bins, binning)


def scaled_probs(logits: ArrayLike, temperature: float) -> Tensor:
    """``softmax(z / T)`` in float64."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return torch.softmax(as_logits(logits) / temperature, dim=1)


def _nll_of_logits(z: Tensor, y: Tensor, temperature: float) -> float:
    return float(torch.nn.functional.cross_entropy(z / temperature, y))


@dataclass(frozen=True)
class TemperatureFit:
    """One fitted temperature: ``nll_before`` at T = 1 and ``nll_after`` at ``temperature`` on the ``n``
    rows it was fitted on; ``at_bound`` when the minimum lies at an end of ``bounds`` (the data asked
    for a more extreme T, e.g. logits that separate the classes perfectly)."""

    temperature: float
    nll_before: float
    nll_after: float
    n: int
    at_bound: bool
    bounds: tuple[float, float] = T_BOUNDS


def fit_temperature(logits: ArrayLike, labels: ArrayLike, *,
                    bounds: tuple[float, float] = T_BOUNDS) -> TemperatureFit:
    """The temperature minimising the NLL of ``softmax(z / T)`` on these rows (module docstring: Brent's
    bounded search over ``log T``, ``xatol`` 1e-10)."""
    low, high = bounds
    if not 0 < low < 1 < high:
        raise ValueError(f"bounds must satisfy 0 < low < 1 < high, got {bounds}")
    z = as_logits(logits)
    y = as_labels(labels, z.shape[0], z.shape[1])
    result = minimize_scalar(lambda log_t: _nll_of_logits(z, y, math.exp(log_t)), method="bounded",
                             bounds=(math.log(low), math.log(high)), options={"xatol": 1e-10})
    t = math.exp(float(result.x))
    at_bound = min(abs(float(result.x) - math.log(low)), abs(float(result.x) - math.log(high))) < 1e-6
    for end in (low, high):  # NLL flat at 0 towards a bound: classes separated to machine precision
        if not at_bound and _nll_of_logits(z, y, end) <= _nll_of_logits(z, y, t):
            t, at_bound = end, True
    return TemperatureFit(temperature=t, nll_before=_nll_of_logits(z, y, 1.0), nll_after=_nll_of_logits(z, y, t),
                          n=int(z.shape[0]), at_bound=at_bound, bounds=(low, high))


@dataclass(frozen=True)
class TemperatureScaling:
    """A fitted temperature scaling: ``overall`` on all rows and, when fitted with groups, one
    :class:`TemperatureFit` per group (``by_group``)."""

    overall: TemperatureFit
    by_group: dict[str, TemperatureFit] = field(default_factory=dict)

    def probs(self, logits: ArrayLike, groups: Sequence[Any] | np.ndarray | None = None) -> Tensor:
        """Calibrated probabilities: each row's group temperature when ``groups`` is given (a group
        that was not fitted is an error, naming it), else the overall temperature."""
        z = as_logits(logits)
        if groups is None:
            return scaled_probs(z, self.overall.temperature)
        if not self.by_group:
            raise ValueError("groups given, but this temperature scaling was fitted without groups")
        g = as_groups(groups, z.shape[0])
        unknown = sorted(set(g.tolist()) - set(self.by_group))
        if unknown:
            raise ValueError(f"no temperature fitted for group(s) {unknown}; fitted: {sorted(self.by_group)}")
        t = torch.tensor([self.by_group[name].temperature for name in g], dtype=torch.float64)
        return torch.softmax(z / t[:, None], dim=1)


def fit_temperature_scaling(logits: ArrayLike, labels: ArrayLike, groups: Sequence[Any] | np.ndarray | None = None,
                            *, bounds: tuple[float, float] = T_BOUNDS) -> TemperatureScaling:
    """Fit one temperature on all rows and, with ``groups``, one per group on that group's rows.
    Fit on validation logits, never on the test images the errors are reported on."""
    z = as_logits(logits)
    y = as_labels(labels, z.shape[0], z.shape[1])
    overall = fit_temperature(z, y, bounds=bounds)
    if groups is None:
        return TemperatureScaling(overall=overall)
    g = as_groups(groups, z.shape[0])
    by_group = {}
    for name in sorted(set(g.tolist())):
        rows = torch.from_numpy(np.flatnonzero(g == name))
        by_group[name] = fit_temperature(z[rows], y[rows], bounds=bounds)
    return TemperatureScaling(overall=overall, by_group=by_group)


def _row_nll(p: Tensor, y: Tensor) -> Tensor:
    return -torch.log(p.gather(1, y[:, None])[:, 0])


def _row_brier(p: Tensor, y: Tensor) -> Tensor:
    return ((p - torch.nn.functional.one_hot(y, p.shape[1]).double()) ** 2).sum(1)


def calibration_report(probs: ArrayLike, labels: ArrayLike, groups: Sequence[Any] | np.ndarray | None = None, *,
                       clusters: Clusters = None, n_bins: int = N_BINS, n_boot: int = N_BOOT, seed: int = 0,
                       level: float = LEVEL) -> dict[str, dict[str, Interval]]:
    """Every error of the module docstring with its interval, for ``"all"`` rows and, with ``groups``,
    each group (a group may not be called ``"all"``): ``ece`` and ``ece_mass`` (equal-width and
    equal-mass bins), ``classwise_ece``, ``brier`` and ``nll``. Brier and NLL are means of per-image
    values (bootstrap of the mean); the ECEs are recomputed on each resample from its row weights, all
    resamples at once (:func:`dermx.trust.uncertainty.weighted_interval`; equal-mass edges follow the rows
    drawn); patients are resampled with ``clusters``."""
    p, y = _probs_labels(probs, labels)
    parts = strata(groups, p.shape[0])
    out: dict[str, dict[str, Interval]] = {}
    for name, rows in parts.items():
        pg, yg = p[torch.from_numpy(rows)], y[torch.from_numpy(rows)]
        patients = subset(clusters, rows)
        options: dict[str, Any] = {"clusters": patients, "n_boot": n_boot, "seed": seed, "level": level}

        confidence, predicted = pg.max(1)
        one_hot = torch.nn.functional.one_hot(yg, pg.shape[1])

        out[name] = {
            "ece": weighted_interval(_width_ece_of_weights(confidence, predicted == yg, n_bins), len(rows),
                                     **options),
            "ece_mass": weighted_interval(_mass_ece_of_weights(confidence, predicted == yg, n_bins), len(rows),
                                          **options),
            "classwise_ece": weighted_interval(_width_ece_of_weights(pg, one_hot, n_bins), len(rows), **options),
            "brier": mean_interval(_row_brier(pg, yg), **options),
            "nll": mean_interval(_row_nll(pg, yg), **options),
        }
    return out
