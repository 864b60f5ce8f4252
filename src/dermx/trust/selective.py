r"""Abstention: answer only when confident, and how risky the answers are (selective classification,
Geifman & El-Yaniv 2017).

A rule with threshold ``t`` answers the images whose confidence ``c_i ≥ t`` (e.g. the top probability)
and abstains on the rest. Over n images with ``e_i = 1`` when the answer is wrong:

- ``coverage(t) = #{i : c_i ≥ t} / n``, the share answered;
- ``risk(t) = Σ_{c_i ≥ t} e_i / #{i : c_i ≥ t}``, the error rate among the answers (selective risk).

**Risk–coverage curve**: one point per distinct confidence value ``t_1 > t_2 > … > t_m`` (images with
equal confidence are answered or refused together). **AURC**, the area under it,
``Σ_j risk(t_j) · (coverage(t_j) − coverage(t_{j−1}))`` with ``coverage(t_0) = 0``; without ties this
is ``(1/n) Σ_{k=1}^{n} (errors among the k most confident) / k`` (Geifman et al. 2019). Lower is
better; it mixes how good the model is with how well its confidence ranks its errors.

**Choosing t for a target risk R** on calibration images (never the test images): the lowest
``t_j`` (the largest coverage) whose risk is at most R. ``bound="empirical"`` compares the observed
risk; ``bound="clopper_pearson"`` compares its one-sided ``level`` Clopper–Pearson upper bound
(``Beta(level; k + 1, a − k)`` quantile for k errors among a answers), a more cautious choice. Neither
is a guarantee on new images: the threshold is chosen after looking at every t_j (no correction for
that), and the test figures should be reported with their own intervals. When no threshold meets
R the rule abstains on everything (``t = +inf``, ``achievable`` false).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from scipy.stats import beta
from torch import Tensor

from dermx.trust._inputs import ArrayLike, as_double
from dermx.trust.uncertainty import (
    LEVEL,
    N_BOOT,
    Clusters,
    Interval,
    proportion,
    strata,
    subset,
    weighted_interval,
)

Bound = Literal["empirical", "clopper_pearson"]
"""How the risk of a threshold is compared with the target: as observed, or by its upper bound."""


def _confidence_errors(confidence: ArrayLike, correct: ArrayLike) -> tuple[Tensor, Tensor]:
    c = as_double("confidence", confidence, ndim=1)
    ok = correct.detach().cpu() if isinstance(correct, Tensor) else torch.as_tensor(np.asarray(correct))
    if ok.shape != c.shape:
        raise ValueError(f"correct has shape {tuple(ok.shape)}, expected one value per row {tuple(c.shape)}")
    if ok.dtype != torch.bool:
        raise ValueError(f"correct must be booleans (answer right or wrong), got dtype {ok.dtype}")
    if c.numel() == 0:
        raise ValueError("confidence is empty")
    return c, (~ok).double()


@dataclass(frozen=True)
class RiskCoverage:
    """The risk–coverage curve: per distinct confidence ``threshold`` (decreasing), the ``answered``
    count, ``coverage`` and ``risk``; ``n`` rows in all (module docstring)."""

    threshold: Tensor
    answered: Tensor
    errors: Tensor
    n: int

    @property
    def coverage(self) -> Tensor:
        return self.answered / self.n

    @property
    def risk(self) -> Tensor:
        return self.errors / self.answered

    @property
    def aurc(self) -> float:
        """``Σ_j risk_j · (coverage_j − coverage_{j−1})``."""
        steps = torch.diff(self.coverage, prepend=torch.zeros(1, dtype=torch.float64))
        return float((self.risk * steps).sum())


def risk_coverage(confidence: ArrayLike, correct: ArrayLike) -> RiskCoverage:
    """The risk–coverage curve of answering the most confident images first."""
    c, e = _confidence_errors(confidence, correct)
    order = torch.sort(c, descending=True, stable=True).indices
    c, e = c[order], e[order]
    last_of_tie = torch.ones_like(c, dtype=torch.bool)
    last_of_tie[:-1] = c[1:] != c[:-1]
    answered = torch.arange(1, c.numel() + 1, dtype=torch.float64)
    return RiskCoverage(threshold=c[last_of_tie], answered=answered[last_of_tie], errors=e.cumsum(0)[last_of_tie],
                        n=int(c.numel()))


def aurc(confidence: ArrayLike, correct: ArrayLike) -> float:
    """Area under the risk–coverage curve (module docstring)."""
    return risk_coverage(confidence, correct).aurc


def _aurc_of_weights(c: Tensor, e: Tensor) -> Callable[[Tensor], Tensor]:
    """AURC as a function of row weights ``(B, n)``, every resample at once: with the distinct confidences
    in decreasing order, ``W_j`` the weight and ``E_j`` the weighted errors at the j-th, and ``A_j``, ``C_j``
    their running sums, ``Σ_j (C_j / A_j) · W_j / Σ w`` (the module docstring's sum on the rows repeated as
    weighted; a confidence none of whose rows was drawn adds 0). ``W`` and ``E`` are sums of each tie's
    columns (``index_add_``): memory ``O(B · n)``, not the ``n × m`` one-hot matrix of ties."""
    distinct, inverse = torch.unique(c, return_inverse=True)
    position = len(distinct) - 1 - inverse  # rank of each row's confidence, decreasing

    def aurc_of(weights: Tensor) -> Tensor:
        drawn = weights.new_zeros(len(weights), len(distinct)).index_add_(1, position, weights)
        wrong = weights.new_zeros(len(weights), len(distinct)).index_add_(1, position, weights * e)
        risk = wrong.cumsum(dim=1) / drawn.cumsum(dim=1).clamp(min=1e-300)
        return (risk * drawn).sum(dim=1) / weights.sum(dim=1)

    return aurc_of


def aurc_interval(confidence: ArrayLike, correct: ArrayLike, *, clusters: Clusters = None, n_boot: int = N_BOOT,
                  seed: int = 0, level: float = LEVEL) -> Interval:
    """AURC with its percentile bootstrap CI (patients resampled with ``clusters``): the same draws and
    values as recomputing :func:`aurc` on every resample's repeated rows
    (:func:`~dermx.trust.uncertainty.statistic_interval`), without a Python loop per resample."""
    c, e = _confidence_errors(confidence, correct)
    return weighted_interval(_aurc_of_weights(c, e), c.numel(), clusters=clusters, n_boot=n_boot, seed=seed,
                             level=level)


def clopper_pearson_upper(errors: int, n: int, level: float = LEVEL) -> float:
    """One-sided ``level`` upper bound of a binomial proportion: ``Beta(level; k + 1, n − k)``, 1 at k = n."""
    if not 0 <= errors <= n or n == 0:
        raise ValueError(f"need 0 <= errors <= n and n > 0, got {errors} of {n}")
    return 1.0 if errors == n else float(beta.ppf(level, errors + 1, n - errors))


@dataclass(frozen=True)
class AbstentionRule:
    """Answer when confidence ≥ ``threshold``, chosen on ``n`` calibration rows for ``target_risk``:
    there it answered ``coverage`` of them with ``risk`` (``risk_bound`` its compared value).
    ``achievable`` is false when no threshold met the target (then ``threshold`` is ``+inf``)."""

    threshold: float
    target_risk: float
    coverage: float
    risk: float
    risk_bound: float
    bound: Bound
    n: int
    achievable: bool

    def answers(self, confidence: ArrayLike) -> Tensor:
        """``(n,)`` bool: true where the rule answers, false where it abstains."""
        return as_double("confidence", confidence, ndim=1) >= self.threshold


def threshold_for_risk(confidence: ArrayLike, correct: ArrayLike, target_risk: float, *,
                       bound: Bound = "empirical", level: float = LEVEL) -> AbstentionRule:
    """The largest-coverage threshold whose (bounded) risk on these calibration rows is ≤ ``target_risk``."""
    if not 0 <= target_risk <= 1:
        raise ValueError(f"target_risk must be in [0, 1], got {target_risk}")
    curve = risk_coverage(confidence, correct)
    if bound == "empirical":
        compared = curve.risk
    elif bound == "clopper_pearson":
        compared = torch.tensor([clopper_pearson_upper(int(k), int(a), level)
                                 for k, a in zip(curve.errors.tolist(), curve.answered.tolist(), strict=True)],
                                dtype=torch.float64)
    else:
        raise ValueError(f"bound must be 'empirical' or 'clopper_pearson', got {bound!r}")
    meets = torch.nonzero(compared <= target_risk).flatten()
    if meets.numel() == 0:
        return AbstentionRule(threshold=math.inf, target_risk=target_risk, coverage=0.0, risk=math.nan,
                              risk_bound=math.nan, bound=bound, n=curve.n, achievable=False)
    j = int(meets[-1])
    return AbstentionRule(threshold=float(curve.threshold[j]), target_risk=target_risk,
                          coverage=float(curve.coverage[j]), risk=float(curve.risk[j]),
                          risk_bound=float(compared[j]), bound=bound, n=curve.n, achievable=True)


@dataclass(frozen=True)
class SelectiveQuality:
    """A rule on some rows: ``coverage`` (share answered) and ``risk`` (errors among the answers),
    both with Wilson intervals, and ``aurc`` with its bootstrap interval."""

    coverage: Interval
    risk: Interval
    aurc: Interval


def selective_report(confidence: ArrayLike, correct: ArrayLike, rule: AbstentionRule,
                     groups: Sequence[Any] | np.ndarray | None = None, *, clusters: Clusters = None,
                     n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> dict[str, SelectiveQuality]:
    """How ``rule`` does on test rows: ``"all"`` and, with ``groups``, each group (keys are group names;
    a group may not be called ``"all"``)."""
    c, e = _confidence_errors(confidence, correct)
    out = {}
    for name, rows in strata(groups, c.numel()).items():
        index = torch.from_numpy(rows)
        cg, eg = c[index], e[index]
        answered = cg >= rule.threshold
        wrong = int(eg[answered].sum())

        out[name] = SelectiveQuality(
            coverage=proportion(int(answered.sum()), int(answered.numel()), level=level),
            risk=proportion(wrong, int(answered.sum()), level=level),
            aurc=aurc_interval(cg, eg == 0, clusters=subset(clusters, rows), n_boot=n_boot, seed=seed,
                               level=level))
    return out
