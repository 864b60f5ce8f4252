"""Trust in each model's diagnoses per group of images, from the probabilities and logits the benchmark
already has (no more forward passes): ``summary["calibration"]``, ``["conformal"]`` and ``["selective"]``.

The groups are the values of the attribute ``by`` (a column of the images table: skin tone by default,
:data:`~dermx.evaluate.image_groups.GROUP_BY`, or the attribute of a ``--groups`` file; ``unknown`` where an
image has none); intervals resample patients (:mod:`dermx.trust.uncertainty`). Probabilities are
over the DermXDB classes the model has (the benchmark's ``dx:`` columns); the true class is the
reference diagnosis.

- **calibration[model]**: ``uncalibrated`` (the model's softmax) and, when every fold's checkpoint carries
  a calibration fitted on its validation split (:class:`~dermx.trust.fitted.ModelCalibration`; never fitted
  here, never on test images), ``calibrated`` (``softmax(z / T)`` with the group's temperature where one was
  fitted, else the overall one): per group and ``all``, ECE with equal-width and equal-mass bins,
  class-wise ECE, Brier and NLL with their CIs (:func:`dermx.trust.calibration.calibration_report`), and
  the reliability bins of each group (:data:`N_BINS` equal-width bins of the top-1 confidence); ``fitted``,
  per fold, the temperatures and their cross-fitted checks on validation (``temperature_checks``: a fitted
  temperature that did not beat T = 1 there is not applied). Without a calibration ``calibrated`` is
  ``None`` and ``note`` says why; nothing takes its place.
- **conformal[model]**: with a calibration, its diagnosis sets (score and α as fitted) on the test images:
  ``marginal`` (one threshold) and ``mondrian`` (each group's own threshold where one was calibrated, the
  marginal one elsewhere, listed in ``fallback``; own thresholds, and the groups' own temperatures, only
  when the calibration's ``group_key`` is ``by``: fitted per skin tone, they say nothing of another
  attribute's groups), each with coverage (Wilson CI) and mean set size
  (patient bootstrap CI) overall and per group, and the worst group (:func:`dermx.trust.conformal.
  coverage_report`).
- **selective[model]**: AURC per group of the uncalibrated top-1 confidence (risk–coverage,
  :func:`dermx.trust.selective.aurc`, CI over patients); with a calibration, the abstention rule read off
  its validation risk–coverage curve for ``target_risk`` (:attr:`BenchmarkConfig.abstain_risk
  <dermx.evaluate.benchmark.config.BenchmarkConfig>`) applied to the calibrated test confidence: per group
  the share answered and the error rate among the answers (Wilson CIs) and the AURC of the calibrated
  confidence. Each fold's images get that fold's temperature, thresholds and rule.

A model whose classes include some DermXDB lacks gets no calibrated figures (its calibration is of a
softmax over more classes than the test labels cover): ``note`` says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from dermx import vocab
from dermx.evaluate.image_groups import GROUP_BY, UNKNOWN
from dermx.evaluate.stats import Clusters
from dermx.trust.calibration import calibration_report, reliability
from dermx.trust.conformal import CoverageReport, SetQuality, coverage_report
from dermx.trust.fitted import ModelCalibration
from dermx.trust.selective import aurc_interval
from dermx.trust.uncertainty import Interval, proportion, strata, subset

#: Equal-width bins of the ECEs and reliability diagrams (torchmetrics' default).
N_BINS = 15
#: What ``note`` says of a model whose checkpoint carries no calibration.
NO_CALIBRATION = "model carries no calibration"

Calibrations = Sequence[ModelCalibration | None]


def interval(value: Interval) -> dict[str, Any]:
    """A :class:`~dermx.trust.uncertainty.Interval` as an estimate of :mod:`dermx.evaluate.stats`."""
    return {"mean": value.estimate, "low": value.low, "high": value.high, "level": value.level, "unit": value.unit,
            "n": value.n}


def _classes(images: pd.DataFrame) -> tuple[list[str], bool]:
    """The DermXDB classes the model has, and whether it gave logits: every class with a logit, else
    (a stand-in giving probabilities only) all six."""
    given = [d for d in vocab.DIAGNOSES if f"logit:{d}" in images and images[f"logit:{d}"].notna().all()]
    return (given, True) if given else (list(vocab.DIAGNOSES), False)


def _reliability(p: Tensor, y: Tensor, groups: np.ndarray) -> dict[str, list[dict[str, float]]]:
    out = {}
    for name, rows in strata(groups, len(y)).items():
        index = torch.from_numpy(rows)
        bins = reliability(p[index], y[index], n_bins=N_BINS)
        out[name] = [{"low": float(bins.edges[b]), "high": float(bins.edges[b + 1]), "n": int(bins.count[b]),
                      "confidence": float(bins.confidence[b]), "accuracy": float(bins.accuracy[b])}
                     for b in range(N_BINS) if bins.count[b] > 0]
    return out


def _errors(p: Tensor, y: Tensor, groups: np.ndarray, patients: list[str], boot: dict[str, int]) -> dict[str, Any]:
    report = calibration_report(p, y, groups, clusters=patients, n_bins=N_BINS, **boot)
    return {"groups": {name: {k: interval(v) for k, v in errors.items()} for name, errors in report.items()},
            "reliability": _reliability(p, y, groups)}


def _quality(quality: SetQuality) -> dict[str, Any]:
    return {"coverage": interval(quality.coverage), "mean_size": interval(quality.mean_size),
            "n_empty": quality.n_empty}


def _coverage(report: CoverageReport) -> dict[str, Any]:
    return {"groups": {"all": _quality(report.overall), **{g: _quality(q) for g, q in report.by_group.items()}},
            "worst_group": report.worst_group}


def _aurc(confidence: Tensor, correct: Tensor, groups: np.ndarray, patients: list[str],
          boot: dict[str, int]) -> dict[str, dict[str, Any]]:
    """AURC of ``confidence`` per group and ``all``, its CI over patients."""
    out = {}
    for name, rows in strata(groups, len(correct)).items():
        index = torch.from_numpy(rows)
        out[name] = {"aurc": interval(aurc_interval(confidence[index], correct[index], clusters=subset(patients, rows),
                                                    **boot))}
    return out


def _validation_point(calibration: ModelCalibration, threshold: float) -> tuple[float, float]:
    """Coverage and risk of the calibration's validation curve at ``threshold`` (NaN when it abstains on all)."""
    point = next(((c, r) for t, c, r in calibration.risk_curve if t == threshold), None)
    return point if point is not None else (0.0, math.nan)


def _why_not(calibrations: Calibrations, folds: Sequence[Any], names: dict[str, Any], logits: bool) -> str | None:
    """Why the calibrated figures cannot be computed, or ``None`` when they can."""
    missing = [f for f, c in zip(folds, calibrations, strict=True) if c is None]
    if len(missing) == len(folds):
        return NO_CALIBRATION
    if missing:
        return f"{NO_CALIBRATION} for fold(s) {', '.join(map(str, missing))}"
    extra = [own for own, ours in names.get("diagnoses", {}).items() if ours not in vocab.DIAGNOSES]
    if extra:
        return (f"the model's classes {extra} are not DermXDB's: its calibration is of a softmax over classes the "
                "test labels do not cover")
    if not logits:
        return "the candidate gives probabilities only, no logits to calibrate"
    return None


def fold_rows(images: pd.DataFrame, fold: Any) -> np.ndarray:
    """Positions of ``images``' rows of ``fold`` (``None``: a model of one checkpoint, its ``fold`` empty)."""
    column = images["fold"]
    return np.flatnonzero(column.isna().to_numpy() if fold is None else (column == fold).to_numpy())


def model_trust(images: pd.DataFrame, info: dict[str, Any], calibrations: Calibrations, *, by: str = GROUP_BY,
                clusters: Clusters, target_risk: float, n_boot: int, seed: int) -> dict[str, dict[str, Any]]:
    """One model's ``calibration``, ``conformal`` and ``selective`` entries per group of the attribute ``by``
    (module docstring): ``images`` its rows of the images table, ``info`` its ``summary["models"]`` entry,
    ``calibrations`` one per fold of ``info["folds"]``."""
    mine = images.sort_values("stem", kind="stable").reset_index(drop=True)
    classes, has_logits = _classes(mine)
    if len(classes) < 2:  # a model of its own classes sharing one class with the data: nothing to calibrate
        few = f"the model shares {len(classes)} diagnosis class with the data; calibration needs at least 2"
        return {"calibration": {"bins": N_BINS, "classes": classes, "uncalibrated": None, "calibrated": None,
                                "note": few},
                "conformal": {"note": few},
                "selective": {"target_risk": target_risk, "uncalibrated": None, "calibrated": None, "note": few}}
    labels = mine["reference"].map({d: i for i, d in enumerate(classes)})
    if labels.isna().any():
        raise ValueError(f"test images of classes the model lacks: {sorted(set(mine['reference'][labels.isna()]))}")
    y = torch.tensor(labels.to_numpy(dtype=np.int64))
    p = torch.tensor(mine[[f"dx:{d}" for d in classes]].to_numpy(dtype=np.float64))
    groups = mine[by].astype(str).to_numpy()
    patients = [str(clusters.get(s, s)) for s in mine["stem"]] if clusters is not None else list(mine["stem"])
    boot = {"n_boot": n_boot, "seed": seed}
    confidence, correct = p.max(dim=1).values, p.argmax(dim=1) == y
    why = _why_not(calibrations, info["folds"], info.get("names", {}), has_logits)
    calibration: dict[str, Any] = {"bins": N_BINS, "classes": classes, "uncalibrated": _errors(p, y, groups, patients,
                                                                                                 boot),
                                   "calibrated": None, "note": why}
    conformal: dict[str, Any] = {"note": why}
    selective: dict[str, Any] = {"target_risk": target_risk,
                                 "uncalibrated": _aurc(confidence, correct, groups, patients, boot),
                                 "calibrated": None, "note": why}
    if why is not None:
        return {"calibration": calibration, "conformal": conformal, "selective": selective}
    z = torch.tensor(mine[[f"logit:{d}" for d in classes]].to_numpy(dtype=np.float64))
    p_cal = torch.empty_like(p)
    marginal = torch.empty_like(p, dtype=torch.bool)
    mondrian = torch.empty_like(p, dtype=torch.bool)
    threshold = torch.empty(len(mine), dtype=torch.float64)
    fitted, fallback = [], set()
    for fold, cal in zip(info["folds"], calibrations, strict=True):
        assert cal is not None
        part = torch.from_numpy(fold_rows(mine, fold))
        same_key = cal.group_key == by  # the calibration's groups are values of this attribute
        own = [g if g != UNKNOWN else None for g in groups[part.numpy()]] if same_key else None
        p_cal[part] = cal.probabilities(z[part], own)
        marginal[part] = cal.sets(p_cal[part])
        mondrian[part] = cal.sets(p_cal[part], own)
        fallback |= {g for g in groups[part.numpy()] if not same_key or g == UNKNOWN or g not in cal.group_thresholds}
        threshold[part] = cal.abstention_threshold(target_risk)
        coverage, risk = _validation_point(cal, float(threshold[part][0]))
        fitted.append({"fold": fold, "temperature": cal.temperature, "group_key": cal.group_key,
                       "group_temperatures": cal.group_temperatures, "alpha": cal.alpha, "score": cal.score,
                       "validation_images": cal.n, "abstention_threshold": float(threshold[part][0]),
                       "validation_coverage": coverage, "validation_risk": risk,
                       "temperature_checks": cal.temperature_checks})
    calibration["calibrated"] = _errors(p_cal, y, groups, patients, boot)
    calibration["fitted"] = fitted
    alphas = sorted({c.alpha for c in calibrations if c is not None})
    conformal.update(alpha=alphas[0] if len(alphas) == 1 else alphas,
                     score=sorted({c.score for c in calibrations if c is not None}),
                     marginal=_coverage(coverage_report(marginal, y, groups, clusters=patients, **boot)),
                     mondrian={**_coverage(coverage_report(mondrian, y, groups, clusters=patients, **boot)),
                               "fallback": sorted(fallback)})
    c_cal = p_cal.max(dim=1).values
    answered = c_cal >= threshold
    wrong = answered & (p_cal.argmax(dim=1) != y)
    per_group = _aurc(c_cal, correct, groups, patients, boot)
    for name, rows in strata(groups, len(y)).items():
        index = torch.from_numpy(rows)
        per_group[name] |= {"answered": interval(proportion(int(answered[index].sum()), len(rows))),
                            "risk": interval(proportion(int(wrong[index].sum()), int(answered[index].sum())))}
    selective["calibrated"] = per_group
    return {"calibration": calibration, "conformal": conformal, "selective": selective}


def trust_summary(images: pd.DataFrame, models: dict[str, dict[str, Any]], calibrations: Mapping[str, Calibrations],
                  *, by: str = GROUP_BY, clusters: Clusters, target_risk: float, n_boot: int,
                  seed: int) -> dict[str, dict[str, Any]]:
    """``{"calibration": {model: ...}, "conformal": {...}, "selective": {...}}`` for every model of ``models``
    (``summary["models"]``) per group of the attribute ``by``; ``calibrations[model]``: one per fold (module
    docstring)."""
    out: dict[str, dict[str, Any]] = {"calibration": {}, "conformal": {}, "selective": {}}
    for model, info in models.items():
        per_fold = calibrations.get(model, [None] * len(info["folds"]))
        entry = model_trust(images[images["model"] == model], info, per_fold, by=by, clusters=clusters,
                            target_risk=target_risk, n_boot=n_boot, seed=seed)
        for key, value in entry.items():
            out[key][model] = value
    return out
