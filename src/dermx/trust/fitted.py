"""The calibration a model carries: fitted once on its validation split, applied to every later answer.

:func:`fit_model_calibration` takes a model's diagnosis logits on the images its checkpoint was selected
on (never test images) with their reference classes and, optionally, a group per image (skin tone):

1. **Temperature** ``T`` minimising the NLL of ``softmax(z / T)`` (:func:`~dermx.trust.calibration.
   fit_temperature`), and one temperature per group that has at least :data:`MIN_GROUP` images; any
   other group's images use the overall ``T`` (:meth:`ModelCalibration.temperature_of` says which).
   A temperature is **applied only if it helps on images it was not fitted on**
   (:func:`check_temperature`): the validation images are split by patient into :data:`CHECK_FOLDS`
   folds, each fold's images are scaled with the temperature fitted on the other folds, and ``T`` is kept
   when the top-label ECE (15 equal-width bins) of those cross-fitted probabilities is lower than that of
   ``softmax(z)``; otherwise ``T = 1``. A group's temperature is checked the same way on its images
   against the overall temperature, which its images get otherwise. On a small validation split the
   NLL fit can follow a few confidently wrong images (on the demo's ~85 validation images it chose
   T ≈ 1.4–1.7 and doubled the test ECE of models that were calibrated already); held-out folds can show
   it. A fit that stops at a bound of its search (validation logits that separate the classes: the NLL
   asks for T → 0) is never applied. The decision and both ECEs are kept (``temperature_checks``).
2. **Diagnosis sets** at error rate ``alpha`` with ``score`` (:mod:`~dermx.trust.conformal`; default
   ``lac``, the smallest sets on average (Sadinle et al. 2019): on the demo's models the
   non-randomised APS sets held 3.5 of 6 classes on average at 95 % coverage, too wide to help) on the
   calibrated probabilities: the marginal threshold and one per group (Mondrian) with its image count.
   A group with fewer than ``1/α − 1`` images has threshold ``+∞``: its sets are every class.
3. **Risk–coverage** of the calibrated top-1 confidence (:func:`~dermx.trust.selective.risk_coverage`),
   kept as ``(threshold, coverage, risk)`` points so that an abstention rule for any target risk can be
   read later (:meth:`ModelCalibration.abstention_threshold`, the empirical rule of
   :func:`~dermx.trust.selective.threshold_for_risk`).

What it promises: sets that contain the true class with probability ≥ 1 − α *if* new images are
exchangeable with the validation images (same population; per group with Mondrian thresholds). What it
does not: coverage for one patient, or under a shift of population; a calibrated probability is
calibrated on average over images like the validation ones, not for each image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from sklearn.model_selection import GroupKFold
from torch import Tensor

from dermx.trust._inputs import ArrayLike, as_groups, as_labels, as_logits, check_alpha
from dermx.trust.calibration import ece, fit_temperature, scaled_probs
from dermx.trust.conformal import Score, conformal_quantile, conformity_scores, prediction_sets
from dermx.trust.selective import risk_coverage

__all__ = ["CHECK_FOLDS", "MIN_GROUP", "ModelCalibration", "Split", "TemperatureCheck", "check_temperature",
           "fit_model_calibration"]

Split = Literal["validation", "calibration"]
"""The part of a training run a calibration was fitted on."""

#: Fewest validation images of a group for a temperature of its own (fewer: the overall temperature).
MIN_GROUP = 30
#: Default error rate of the diagnosis sets: they hold the true class for ≥ 90 % of images.
ALPHA = 0.1
#: Patient folds of the cross-fitted check of a temperature.
CHECK_FOLDS = 5


@dataclass(frozen=True)
class TemperatureCheck:
    """Whether a temperature fitted on ``n`` images helps on images it was not fitted on (module docstring):
    ``fitted`` on all of them; top-label ECE of ``softmax(z / baseline)`` (``ece_baseline``; the baseline
    is 1, or the overall temperature for a group) and of the cross-fitted probabilities
    (``ece_cross_fitted``) over ``folds`` patient folds; ``applied`` when the second is lower and the fit
    did not stop at a bound of its search (``at_bound``: the validation logits separate the classes, so
    the NLL asks for T → 0 and any T would do; applying it would make every answer certain). With fewer
    than 2 patients nothing can be held out: not applied, ``ece_cross_fitted`` NaN."""

    fitted: float
    baseline: float
    ece_baseline: float
    ece_cross_fitted: float
    folds: int
    n: int
    applied: bool
    at_bound: bool = False


def check_temperature(logits: ArrayLike, labels: ArrayLike, patients: Sequence[Any] | np.ndarray | None = None, *,
                      baseline: float = 1.0, folds: int = CHECK_FOLDS) -> TemperatureCheck:
    """Fit ``T`` on all rows and cross-fit it over ``folds`` patient folds (each row its own patient when
    ``patients`` is ``None``); apply it when the cross-fitted ECE beats ``T = baseline`` (module
    docstring)."""
    z = as_logits(logits)
    y = as_labels(labels, z.shape[0], z.shape[1])
    groups = np.asarray(patients if patients is not None else range(len(y)), dtype=object)
    if len(groups) != len(y):
        raise ValueError(f"{len(groups)} patients for {len(y)} rows of logits")
    fit = fit_temperature(z, y)
    fitted = fit.temperature
    at_baseline = ece(scaled_probs(z, baseline), y)
    k = min(folds, len(set(groups.tolist())))
    if k < 2:
        return TemperatureCheck(fitted, baseline, at_baseline, math.nan, k, len(y), applied=False,
                                at_bound=fit.at_bound)
    cross = torch.empty_like(z)
    for rest, held in GroupKFold(n_splits=k).split(np.zeros(len(y)), groups=groups):
        t = fit_temperature(z[torch.from_numpy(rest)], y[torch.from_numpy(rest)]).temperature
        cross[torch.from_numpy(held)] = scaled_probs(z[torch.from_numpy(held)], t)
    cross_fitted = ece(cross, y)
    return TemperatureCheck(fitted, baseline, at_baseline, cross_fitted, k, len(y),
                            applied=cross_fitted < at_baseline and not fit.at_bound, at_bound=fit.at_bound)


@dataclass(frozen=True)
class ModelCalibration:
    """A model's fitted calibration (module docstring); stored in its checkpoint as :meth:`to_dict`.

    ``temperature``: overall; ``group_temperatures``: groups with a temperature of their own.
    ``threshold`` / ``group_thresholds``: conformal thresholds of ``score`` at ``alpha`` on calibrated
    probabilities (``inf`` allowed). ``risk_curve``: ``(confidence threshold, coverage, risk)`` points,
    thresholds decreasing. ``n`` validation images, ``group_counts`` per group; ``group_key`` names the
    attribute the groups are values of (``skin_tone``). ``temperature_checks``: the
    :class:`TemperatureCheck` of the overall temperature (``"all"``) and of each group's, as dicts; a
    temperature not applied is 1 (overall) or absent (group). ``split``: the images it was fitted on, the
    run's ``validation`` part (which also selected the checkpoint: optimistic) or a ``calibration`` part
    that neither trained nor selected the model."""

    temperature: float
    alpha: float
    score: Score
    threshold: float
    risk_curve: tuple[tuple[float, float, float], ...]
    n: int
    group_key: str | None = None
    group_temperatures: dict[str, float] = field(default_factory=dict)
    group_thresholds: dict[str, float] = field(default_factory=dict)
    group_counts: dict[str, int] = field(default_factory=dict)
    temperature_checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    split: Split = "validation"

    def temperature_of(self, group: str | None) -> float:
        """The temperature an image of ``group`` is scaled with: its group's, else the overall one."""
        return self.group_temperatures.get(group, self.temperature) if group is not None else self.temperature

    def probabilities(self, logits: ArrayLike, groups: Sequence[str | None] | None = None) -> Tensor:
        """``(n, K)`` calibrated probabilities ``softmax(z / T)``, ``T`` per row from its group."""
        z = as_logits(logits)
        if groups is None:
            t = torch.full((z.shape[0],), self.temperature, dtype=torch.float64)
        else:
            if len(groups) != z.shape[0]:
                raise ValueError(f"{len(groups)} groups for {z.shape[0]} rows of logits")
            t = torch.tensor([self.temperature_of(g) for g in groups], dtype=torch.float64)
        return torch.softmax(z / t[:, None], dim=1)

    def threshold_of(self, group: str | None) -> float:
        """The conformal threshold of an image of ``group``: its group's (Mondrian) when the group was
        calibrated, else the marginal one."""
        return self.group_thresholds.get(group, self.threshold) if group is not None else self.threshold

    def sets(self, probabilities: ArrayLike, groups: Sequence[str | None] | None = None) -> Tensor:
        """``(n, K)`` bool diagnosis sets of calibrated ``probabilities``: per-group thresholds where
        ``groups`` names a calibrated group, the marginal one otherwise."""
        p = torch.as_tensor(np.asarray(probabilities), dtype=torch.float64)
        rows = p.shape[0]
        q = [self.threshold_of(g) for g in groups] if groups is not None else [self.threshold] * rows
        return prediction_sets(p, torch.tensor(q, dtype=torch.float64), self.score)

    def abstention_threshold(self, target_risk: float) -> float:
        """The lowest confidence threshold whose validation risk is ≤ ``target_risk`` (the most images
        answered at that risk); ``inf`` (always abstain) when no threshold met it."""
        if not 0.0 <= target_risk <= 1.0:
            raise ValueError(f"target risk must be in [0, 1], got {target_risk}")
        met = [t for t, _, risk in self.risk_curve if risk <= target_risk]
        return min(met) if met else math.inf

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``inf`` thresholds as the string ``"inf"``, which :meth:`from_dict` reads back)."""
        out = asdict(self)
        out["threshold"] = _number(self.threshold)
        out["group_thresholds"] = {g: _number(v) for g, v in self.group_thresholds.items()}
        out["risk_curve"] = [list(point) for point in self.risk_curve]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCalibration:
        """The inverse of :meth:`to_dict`; unknown or missing keys are an error naming them."""
        fields = set(cls.__dataclass_fields__)
        unknown, missing = sorted(set(data) - fields), sorted(
            f for f in ("temperature", "alpha", "score", "threshold", "risk_curve", "n") if f not in data)
        if unknown or missing:
            raise ValueError(f"calibration record: unknown keys {unknown}, missing keys {missing}")
        return cls(**{**data, "threshold": float(data["threshold"]),
                      "group_thresholds": {g: float(v) for g, v in data.get("group_thresholds", {}).items()},
                      "risk_curve": tuple(tuple(float(v) for v in point) for point in data["risk_curve"])})


def _number(value: float) -> float | str:
    return "inf" if math.isinf(value) else value


def fit_model_calibration(logits: ArrayLike, labels: ArrayLike, groups: Sequence[str] | None = None, *,
                          patients: Sequence[Any] | None = None, group_key: str | None = "skin_tone",
                          alpha: float = ALPHA, score: Score = "lac", split: Split = "validation"
                          ) -> ModelCalibration:
    """Fit a model's calibration on its validation ``logits`` ``(n, K)`` and reference ``labels``
    (module docstring); ``groups``: one value of ``group_key`` per image, or ``None``; ``patients``: each
    image's patient, for the cross-fitted temperature check (``None``: each image its own)."""
    check_alpha(alpha)
    z = as_logits(logits)
    y = as_labels(labels, z.shape[0], z.shape[1])
    who = np.asarray(patients if patients is not None else range(len(y)), dtype=object)
    checks = {"all": check_temperature(z, y, who)}
    overall = checks["all"].fitted if checks["all"].applied else 1.0
    group_counts: dict[str, int] = {}
    g = as_groups(groups, z.shape[0]) if groups is not None else None
    if g is not None:
        for name in sorted(set(g.tolist())):
            rows = np.flatnonzero(g == name)
            group_counts[str(name)] = len(rows)
            if len(rows) >= MIN_GROUP:
                checks[str(name)] = check_temperature(z[torch.from_numpy(rows)], y[torch.from_numpy(rows)], who[rows],
                                                      baseline=overall)
    group_temperatures = {name: c.fitted for name, c in checks.items() if name != "all" and c.applied}
    calibration = ModelCalibration(temperature=overall, alpha=alpha, score=score, threshold=math.inf,
                                   risk_curve=(), n=int(z.shape[0]), group_key=group_key if g is not None else None,
                                   group_temperatures=group_temperatures, group_counts=group_counts)
    p = calibration.probabilities(z, list(g) if g is not None else None)
    scores = conformity_scores(p, y, score)
    group_thresholds = ({str(name): conformal_quantile(scores[torch.from_numpy(np.flatnonzero(g == name))], alpha)
                         for name in group_counts} if g is not None else {})
    curve = risk_coverage(p.max(dim=1).values, p.argmax(dim=1) == y)
    points = tuple((float(t), float(c), float(r)) for t, c, r in zip(curve.threshold, curve.coverage, curve.risk,
                                                                     strict=True))
    return ModelCalibration(temperature=overall, alpha=alpha, score=score,
                            threshold=conformal_quantile(scores, alpha), risk_curve=points, n=int(z.shape[0]),
                            group_key=calibration.group_key, group_temperatures=group_temperatures,
                            group_thresholds=group_thresholds, group_counts=group_counts,
                            temperature_checks={name: _plain(asdict(c)) for name, c in checks.items()}, split=split)


def _plain(check: dict[str, Any]) -> dict[str, Any]:
    """A check's record, JSON-ready (a NaN ECE as ``None``)."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in check.items()}
