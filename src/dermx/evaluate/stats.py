r"""Statistics of benchmark tables: estimates with patient-level bootstrap CIs, paired differences, ratios
of sums, the share of a gap closed, and Wilson intervals for the proportions of small groups.

**Unit.** A localization table holds one row per (image, target) pair; an image first gets its own
mean over its defined pairs, ``m_i = Σ_j v_ij / #{j : v_ij defined}``, and every estimate is the mean of
those image means, ``θ = Σ_i m_i / n`` (each image weighs once, whatever its number of
characteristics). The unit of **resampling** is the patient: images of one patient are not
independent, so the 95 % percentile interval comes from resampling patients with replacement, each
drawn patient bringing all its images (:func:`dermx.metrics.resample_counts`); the interval answers
"how much would θ move on another sample of patients like these". Without patient ids
(``clusters=None``) each image is its own patient. Each estimate says which (``unit``).

Over folds, θ is also computed per fold and summarised as mean ± SD (``ddof = 1``): an SD needs two
folds, so one fold gives no ``fold_sd`` (NaN, never 0). Undefined values (NaN) never enter a mean;
they are counted per pair (``undefined``) and an image whose pairs are all undefined is counted in
``undefined_images``.

**Paired differences** (model A against model B, or a model against a baseline map scored on the
same pairs) keep the pairs both scored (same image, map kind and reference), average ``v_A − v_B``
per image and resample patients jointly for both (:func:`paired_difference`): the interval of the
difference, which is what decides "A is above B" (its lower bound above 0); two overlapping CIs of A
and of B decide nothing. Several comparisons of one family share a Bonferroni-adjusted level
(``level = 1 − 0.05/k`` for k comparisons), so that all k hold together at 95 %.

**Macro F1** is bootstrapped directly: with ``c`` the (n_boot, n) matrix of row counts of the
resamples and one-hot (or multi-label) truth ``Y`` and prediction ``P`` (n, k), ``TP = c·(Y∘P)``,
``FP = c·((1−Y)∘P)``, ``FN = c·(Y∘(1−P))`` give per-resample ``F1_k = 2TP / (2TP + FP + FN)``
(undefined when 0/0), then the mean over the defined labels.

**Ratios** (a miss rate: misses / present pairs) are ``Σ numerator / Σ denominator`` over images,
resampled by patient (:func:`ratio_estimate`). **The share of a gap closed**,
``(model − baseline) / (ceiling − baseline)``, is computed on each resample from the three image-mean
series drawn jointly, so the interval carries the uncertainty of all three (:func:`gap_closed`).
**A group against the rest** (a skin tone against every other image of the model):
``θ(group) − θ(rest)`` with θ a mean of per-image values or a macro F1; each resample draws the
patients of all the images once and recomputes both sides from the rows it drew, so the interval carries
the uncertainty of both (:func:`group_gap`; NaN on a resample where a side drew no image).
**Proportions of a stratum** (accuracy per skin tone, per age group) have Wilson's score interval
(:func:`dermx.metrics.wilson_interval`), which keeps its width at 0 / n and n / n where a bootstrap
of a small stratum collapses to a point; it treats the stratum's images as independent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import torch

from dermx.metrics import (
    bootstrap_ci,
    paired_bootstrap_ci,
    pearson,
    percentile_interval,
    resample_counts,
    resampled,
    summarize,
)
from dermx.metrics import wilson_interval as wilson

Estimate = dict[str, Any]
"""``{"mean", "low", "high", "level", "unit", "n", "undefined", "undefined_images", "fold_mean",
"fold_sd", "folds"}`` (some keys only where they apply)."""

#: ``stem → patient`` of the images of a run; ``None``: each image is its own patient.
Clusters: TypeAlias = "pd.Series | None"

PAIR_KEYS: tuple[str, ...] = ("stem", "kind", "reference")
LEVEL = 0.95


def image_means(rows: pd.DataFrame, score: str) -> pd.Series:
    """Mean of ``score`` per image (``stem``) over its defined pairs; NaN when none is defined."""
    return rows.groupby("stem", sort=True)[score].mean()


def _labels(stems: Sequence[str] | pd.Index, clusters: Clusters) -> tuple[np.ndarray | None, str]:
    """The patient of each stem (``None`` without patient ids) and the unit of resampling."""
    if clusters is None:
        return None, "image"
    return clusters.reindex(list(stems)).fillna(pd.Series(list(stems), index=list(stems))).to_numpy(), "patient"


def _fold_summary(rows: pd.DataFrame, score: str) -> dict[str, Any]:
    if "fold" not in rows or rows["fold"].isna().all():
        return {"fold_mean": math.nan, "fold_sd": math.nan, "folds": 0}
    per_fold = [image_means(part, score).mean() for _, part in rows.groupby("fold")]
    s = summarize(per_fold)
    return {"fold_mean": s.mean, "fold_sd": s.sd, "folds": s.n}


def estimate(rows: pd.DataFrame, score: str, *, clusters: Clusters = None, n_boot: int = 1000, seed: int = 0,
             level: float = LEVEL) -> Estimate:
    """Mean of image means of ``score`` with its bootstrap CI over patients and fold mean ± SD."""
    means = image_means(rows, score) if len(rows) else pd.Series(dtype=float)
    labels, unit = _labels(means.index, clusters)
    out: Estimate = {"mean": math.nan, "low": math.nan, "high": math.nan, "level": level, "unit": unit, "n": 0,
                     "undefined": int(rows[score].isna().sum()) if len(rows) else 0, "undefined_images": 0}
    if len(means):
        ci = bootstrap_ci(means.to_numpy(dtype=float, copy=True), n_boot=n_boot, seed=seed, level=level,
                          clusters=labels)
        out.update(mean=float(ci.estimate), low=float(ci.low), high=float(ci.high),
                   n=int(ci.n - ci.n_undefined), undefined_images=int(ci.n_undefined))
    return {**out, **_fold_summary(rows, score)}


def paired_difference(rows_a: pd.DataFrame, rows_b: pd.DataFrame, score: str, *, clusters: Clusters = None,
                      n_boot: int = 1000, seed: int = 0, level: float = LEVEL) -> Estimate:
    """Mean image-level difference ``A − B`` of ``score`` on the pairs both scored (joined on the
    :data:`PAIR_KEYS` both tables have), bootstrapped over patients drawn jointly for A and B."""
    keys = [k for k in PAIR_KEYS if k in rows_a and k in rows_b]
    joined = rows_a[[*keys, score]].merge(rows_b[[*keys, score]], on=keys, suffixes=("_a", "_b"))
    joined = joined.dropna(subset=[f"{score}_a", f"{score}_b"])
    out: Estimate = {"mean": math.nan, "low": math.nan, "high": math.nan, "level": level,
                     "unit": "image" if clusters is None else "patient", "n": 0, "pairs": len(joined)}
    if joined.empty:
        return out
    grouped = joined.groupby("stem", sort=True)
    a, b = grouped[f"{score}_a"].mean(), grouped[f"{score}_b"].mean()
    labels, unit = _labels(a.index, clusters)
    ci = paired_bootstrap_ci(a.to_numpy(), b.to_numpy(), n_boot=n_boot, seed=seed, level=level, clusters=labels)
    return {**out, "mean": float(ci.estimate), "low": float(ci.low), "high": float(ci.high), "n": ci.n, "unit": unit}


def ratio_estimate(numerator: pd.Series, denominator: pd.Series, *, clusters: Clusters = None, n_boot: int = 1000,
                   seed: int = 0, level: float = LEVEL) -> Estimate:
    """``Σ numerator / Σ denominator`` of per-image counts (aligned on the stem index), with its bootstrap
    CI over patients; NaN when the denominator sums to 0."""
    frame = pd.concat({"n": numerator, "d": denominator}, axis=1).fillna(0.0).sort_index()
    labels, unit = _labels(frame.index, clusters)
    out: Estimate = {"mean": math.nan, "low": math.nan, "high": math.nan, "level": level, "unit": unit,
                     "numerator": float(frame["n"].sum()), "denominator": float(frame["d"].sum()), "n": len(frame)}
    if frame.empty or frame["d"].sum() == 0:
        return out
    num = torch.tensor(frame["n"].to_numpy(dtype=np.float64))
    den = torch.tensor(frame["d"].to_numpy(dtype=np.float64))
    ratios = resampled(lambda counts: (counts @ num) / (counts @ den), len(frame), n_boot=n_boot, seed=seed,
                       clusters=labels)
    low, high = percentile_interval(ratios, level)
    return {**out, "mean": float(num.sum() / den.sum()), "low": float(low), "high": float(high)}


def gap_closed(model: pd.Series, baseline: pd.Series, ceiling: pd.Series, *, clusters: Clusters = None,
               n_boot: int = 1000, seed: int = 0, level: float = LEVEL) -> Estimate:
    """Share of the gap from a baseline to a ceiling that a model closes, ``(θ_m − θ_b) / (θ_c − θ_b)``,
    from three image-mean series on the same images (aligned on the stem index; images where any is
    undefined are left out), each resample drawing the patients jointly for all three. NaN where the
    ceiling is not above the baseline."""
    frame = pd.concat({"m": model, "b": baseline, "c": ceiling}, axis=1).dropna().sort_index()
    labels, unit = _labels(frame.index, clusters)
    out: Estimate = {"mean": math.nan, "low": math.nan, "high": math.nan, "level": level, "unit": unit,
                     "n": len(frame)}
    if frame.empty:
        return out
    values = torch.tensor(frame[["m", "b", "c"]].to_numpy(dtype=np.float64))
    means = resampled(lambda counts: (counts @ values) / counts.sum(dim=1, keepdim=True), len(frame),
                      n_boot=n_boot, seed=seed, clusters=labels)
    width = means[:, 2] - means[:, 1]
    share = torch.where(width > 0, (means[:, 0] - means[:, 1]) / width, torch.nan)
    low, high = percentile_interval(share, level)
    m, b, c = (float(v) for v in values.mean(dim=0))
    return {**out, "mean": (m - b) / (c - b) if c > b else math.nan, "low": float(low), "high": float(high),
            "model": m, "baseline": b, "ceiling": c}


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block: bootstraps that loop over resamples of a few
    hundred rows spend more on handing work to threads than on the work (on two busy cores, measured:
    1.7 ms against 12 µs for the row maxima of a 188 × 6 tensor)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def counts_with_sample(n: int, *, clusters: Sequence[Any] | None = None, n_boot: int = 1000,
                       seed: int = 0) -> torch.Tensor:
    """``(n_boot + 1, n)`` float64 row weights: row 0 the sample itself (every row once), then the
    resamples of :func:`dermx.metrics.resample_counts` (over ``clusters``, each row's patient, when given).
    A statistic computed on every row of it gives the estimate and its resamples at once
    (:func:`from_resamples`); statistics computed on the same rows are paired."""
    return torch.cat([torch.ones(1, n, dtype=torch.float64),
                      resample_counts(n, n_boot=n_boot, seed=seed, clusters=clusters)])


def with_sample(statistic: Callable[[torch.Tensor], torch.Tensor], n: int, *, clusters: Sequence[Any] | None = None,
                n_boot: int = 1000, seed: int = 0, dim: int = 0) -> torch.Tensor:
    """``statistic`` on the rows of :func:`counts_with_sample` (the sample, then the resamples, along ``dim``),
    the resamples a block at a time (:func:`dermx.metrics.resampled`): the same values in ``O(block · n)``
    memory."""
    sample = statistic(torch.ones(1, n, dtype=torch.float64))
    return torch.cat([sample, resampled(statistic, n, n_boot=n_boot, seed=seed, clusters=clusters, dim=dim)],
                     dim=dim)


def from_resamples(values: torch.Tensor, *, unit: str, n: int, level: float = LEVEL) -> Estimate:
    """The estimate of a statistic evaluated on the rows of :func:`counts_with_sample`: the sample's value
    (row 0) and the percentile interval of the resamples (the other rows; NaN resamples ignored)."""
    low, high = percentile_interval(values[1:], level)
    return {"mean": float(values[0]), "low": float(low), "high": float(high), "level": level, "unit": unit, "n": n}


def group_gap(statistic: Callable[[torch.Tensor], torch.Tensor], in_group: np.ndarray, *,
              clusters: Sequence[Any] | None = None, n_boot: int = 1000, seed: int = 0,
              level: float = LEVEL) -> Estimate:
    """``θ(group) − θ(rest)`` with its bootstrap CI (module docstring). ``statistic`` maps ``(r, n)`` row
    weights (how often each of the n rows counts, 0 for a row left out) to r values of θ; ``in_group``
    ``(n,)`` bool; ``clusters``: each row's patient."""
    g = torch.tensor(np.array(in_group, dtype=bool), dtype=torch.float64)
    n = int(g.numel())
    unit = "image" if clusters is None else "patient"
    out: Estimate = {"mean": math.nan, "low": math.nan, "high": math.nan, "level": level, "unit": unit,
                     "n": n, "n_group": int(g.sum())}
    if int(g.sum()) in (0, n):
        return out
    gap = with_sample(lambda counts: statistic(counts * g) - statistic(counts * (1 - g)), n, clusters=clusters,
                      n_boot=n_boot, seed=seed)
    return {**out, **from_resamples(gap, unit=unit, n=n, level=level)}


def weighted_mean(values: np.ndarray) -> Callable[[torch.Tensor], torch.Tensor]:
    """The statistic of :func:`group_gap` for a mean of per-row ``values`` (NaN rows left out):
    ``Σ_i w_i v_i / Σ_i w_i`` over the defined rows."""
    v = torch.tensor(np.asarray(values, dtype=np.float64))
    defined = (~v.isnan()).double()
    v = torch.nan_to_num(v)
    return lambda weights: (weights @ v) / (weights @ defined)


def macro_f1_of(truth: np.ndarray, predicted: np.ndarray) -> Callable[[torch.Tensor], torch.Tensor]:
    """The statistic of :func:`group_gap` for the macro F1 of 0/1 answers ``(n, k)`` (module docstring);
    ``predicted`` ``(..., n, k)`` with leading dimensions (several predictions of the same images) gives
    ``(..., r)`` values, one row of resamples per prediction."""
    y = torch.tensor(np.asarray(truth, dtype=np.float64))
    p = torch.tensor(np.asarray(predicted, dtype=np.float64))
    return lambda weights: _macro_f1(weights, y, p)


def bootstrap_macro_f1(truth: np.ndarray, predicted: np.ndarray, *, clusters: Sequence[Any] | None = None,
                       n_boot: int = 1000, seed: int = 0, level: float = LEVEL) -> Estimate:
    """Macro F1 of 0/1 answers ``(n, k)`` with its bootstrap CI over rows, or over ``clusters`` of rows
    (one label per row: each image's patient) (module docstring)."""
    y = torch.tensor(np.asarray(truth, dtype=np.float64))
    p = torch.tensor(np.asarray(predicted, dtype=np.float64))
    n = y.shape[0]
    unit = "image" if clusters is None else "patient"
    if n == 0:
        return {"mean": math.nan, "low": math.nan, "high": math.nan, "level": level, "unit": unit, "n": 0}
    values = with_sample(lambda counts: _macro_f1(counts, y, p), n, clusters=clusters, n_boot=n_boot, seed=seed)
    return from_resamples(values, unit=unit, n=n, level=level)


def _macro_f1(counts: torch.Tensor, y: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Macro F1 of each resample (rows of ``counts``) of truth ``y`` and prediction ``p`` (n, k)."""
    tp, fp, fn = counts @ (y * p), counts @ ((1 - y) * p), counts @ (y * (1 - p))
    denominator = 2 * tp + fp + fn
    f1 = torch.where(denominator > 0, 2 * tp / denominator.clamp_min(1e-12), torch.nan)
    return f1.nanmean(dim=-1)


def mean_macro_f1(answers: Sequence[tuple[Sequence[int], np.ndarray, np.ndarray]], n: int, *,
                  clusters: Sequence[Any] | None = None, n_boot: int = 1000, seed: int = 0,
                  level: float = LEVEL) -> Estimate:
    """The mean over several answerers (raters) of their macro F1 on one set of ``n`` images, with a CI
    from resampling the images' patients jointly for all of them: ``answers`` holds, per rater,
    ``(rows, truth, predicted)`` with ``rows`` the indices (into the n images) of the images the rater
    answered."""
    unit = "image" if clusters is None else "patient"
    if not answers or n == 0:
        return {"mean": math.nan, "low": math.nan, "high": math.nan, "level": level, "unit": unit, "n": 0,
                "raters": 0}
    rated = [(torch.as_tensor(rows, dtype=torch.long), torch.tensor(np.asarray(truth, dtype=np.float64)),
              torch.tensor(np.asarray(predicted, dtype=np.float64))) for rows, truth, predicted in answers]

    def mean_of(counts: torch.Tensor) -> torch.Tensor:
        return torch.stack([_macro_f1(counts[:, rows], y, p) for rows, y, p in rated], dim=1).nanmean(dim=1)

    mean = with_sample(mean_of, n, clusters=clusters, n_boot=n_boot, seed=seed)
    return {**from_resamples(mean, unit=unit, n=n, level=level), "raters": len(answers)}


def correlation_estimate(a: np.ndarray, b: np.ndarray, stems: Sequence[str], *, clusters: Clusters = None,
                         n_boot: int = 1000, seed: int = 0, level: float = LEVEL) -> Estimate:
    """Mean over images of Pearson's r between ``a`` and ``b`` ``(n, R)`` over R random runs (faithfulness
    correlation: the map's sum over a random pixel subset against the score drop when it is removed),
    with a two-stage bootstrap CI: each resample draws the images' patients and, shared by every image
    (the subsets are drawn once for all), the runs, so the interval carries the variance of the random
    subsets as well as that of the images. NaN per image where either side is constant."""
    x, y = torch.tensor(np.asarray(a, dtype=np.float64)), torch.tensor(np.asarray(b, dtype=np.float64))
    n, runs = x.shape
    labels, unit = _labels(pd.Index(list(stems)), clusters)
    out: Estimate = {"mean": math.nan, "low": math.nan, "high": math.nan, "level": level,
                     "unit": f"{unit} and run", "n": n, "runs": runs}
    if n == 0:
        return out
    images = resample_counts(n, n_boot=n_boot, seed=seed, clusters=labels)
    draws = resample_counts(runs, n_boot=n_boot, seed=seed + 1)  # (n_boot, R), shared by the images
    r = pearson(x[None], y[None], draws[:, None, :])  # (n_boot, n)
    defined = ~torch.isnan(r)
    means = (images * torch.where(defined, r, 0.0)).sum(dim=1) / (images * defined).sum(dim=1)
    low, high = percentile_interval(means, level)
    own = pearson(x, y)
    return {**out, "mean": float(own.nanmean()), "low": float(low), "high": float(high),
            "undefined": int(own.isnan().sum())}


def proportion(successes: int, n: int, level: float = LEVEL) -> Estimate:
    """A proportion with Wilson's score interval (module docstring)."""
    low, high = wilson(successes, n, level)
    return {"mean": successes / n if n else math.nan, "low": low, "high": high, "level": level,
            "unit": "image (Wilson)", "n": n, "successes": successes}


def bonferroni(k: int, level: float = LEVEL) -> float:
    """The level of each of ``k`` intervals that hold together at ``level``: ``1 − (1 − level)/k``."""
    return 1 - (1 - level) / max(1, k)


def one_hot(labels: Sequence[str], names: Sequence[str]) -> np.ndarray:
    """``(n, len(names))`` 0/1 matrix of single labels given by name."""
    index = {name: i for i, name in enumerate(names)}
    out = np.zeros((len(labels), len(names)))
    for row, label in enumerate(labels):
        if label in index:
            out[row, index[label]] = 1.0
    return out
