r"""Statistics of benchmark tables: estimates with bootstrap CIs over images, fold summaries and paired
differences.

The unit of resampling is the image. A localization table holds one row per (image, target) pair; an
image with several pairs first gets its own mean over its defined pairs,
``m_i = Σ_j v_ij / #{j : v_ij defined}``, and every estimate is the mean of those image means,
``θ = Σ_i m_i / n`` (each image weighs once, whatever its number of characteristics). The 95 % CI is
the percentile bootstrap of θ over images (:func:`dermx.metrics.bootstrap_ci`); over folds, θ is
computed per fold and summarised as mean ± SD (``ddof = 1``). Undefined values (NaN) never enter a
mean; they are counted per pair (``undefined``) and an image whose pairs are all undefined is counted
in ``undefined_images``.

A paired comparison of models A and B keeps the pairs both scored (same image, map kind and
reference) and bootstraps the image means of ``v_A − v_B`` with the images drawn jointly
(:func:`dermx.metrics.paired_bootstrap_ci`).

Macro F1 is bootstrapped directly: with ``c`` the (n_boot, n) matrix of draw counts and one-hot (or
multi-label) truth ``Y`` and prediction ``P`` (n, k), ``TP = c·(Y∘P)``, ``FP = c·((1−Y)∘P)``,
``FN = c·(Y∘(1−P))`` give per-resample ``F1_k = 2TP / (2TP + FP + FN)`` (undefined when 0/0), then
the mean over the defined labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from dermx.metrics import bootstrap_ci, paired_bootstrap_ci, summarize

Estimate = dict[str, Any]
"""``{"mean", "low", "high", "n", "undefined", "undefined_images", "fold_mean", "fold_sd", "folds"}``."""

PAIR_KEYS: tuple[str, ...] = ("stem", "kind", "reference")


def image_means(rows: pd.DataFrame, score: str) -> pd.Series:
    """Mean of ``score`` per image (``stem``) over its defined pairs; NaN when none is defined."""
    return rows.groupby("stem", sort=True)[score].mean()


def _fold_summary(rows: pd.DataFrame, score: str) -> dict[str, Any]:
    if "fold" not in rows or rows["fold"].isna().all():
        return {"fold_mean": math.nan, "fold_sd": math.nan, "folds": 0}
    per_fold = [image_means(part, score).mean() for _, part in rows.groupby("fold")]
    s = summarize(per_fold)
    return {"fold_mean": s.mean, "fold_sd": s.sd, "folds": s.n}


def estimate(rows: pd.DataFrame, score: str, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Estimate:
    """Mean of image means of ``score`` with its bootstrap CI over images and fold mean ± SD."""
    means = image_means(rows, score) if len(rows) else pd.Series(dtype=float)
    out: Estimate = {"mean": math.nan, "low": math.nan, "high": math.nan, "n": 0,
                     "undefined": int(rows[score].isna().sum()) if len(rows) else 0, "undefined_images": 0}
    if len(means):
        ci = bootstrap_ci(means.to_numpy(dtype=float, copy=True), n_boot=n_boot, seed=seed, level=level)
        out.update(mean=float(ci.estimate), low=float(ci.low), high=float(ci.high),
                   n=int(ci.n - ci.n_undefined), undefined_images=int(ci.n_undefined))
    return {**out, **_fold_summary(rows, score)}


def paired_difference(rows_a: pd.DataFrame, rows_b: pd.DataFrame, score: str, *, n_boot: int = 1000,
                      seed: int = 0, level: float = 0.95) -> Estimate:
    """Mean image-level difference ``A − B`` of ``score`` on the pairs both scored, bootstrapped over images."""
    keys = [k for k in PAIR_KEYS if k in rows_a and k in rows_b]
    joined = rows_a[[*keys, score]].merge(rows_b[[*keys, score]], on=keys, suffixes=("_a", "_b"))
    joined = joined.dropna(subset=[f"{score}_a", f"{score}_b"])
    out: Estimate = {"mean": math.nan, "low": math.nan, "high": math.nan, "n": 0, "pairs": len(joined)}
    if joined.empty:
        return out
    a = joined.groupby("stem")[f"{score}_a"].mean().to_numpy()
    b = joined.groupby("stem")[f"{score}_b"].mean().to_numpy()
    ci = paired_bootstrap_ci(a, b, n_boot=n_boot, seed=seed, level=level)
    return {**out, "mean": float(ci.estimate), "low": float(ci.low), "high": float(ci.high), "n": ci.n}


def bootstrap_macro_f1(truth: np.ndarray, predicted: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
                       level: float = 0.95) -> Estimate:
    """Macro F1 of 0/1 answers ``(n, k)`` with its bootstrap CI over rows (module docstring)."""
    y = torch.tensor(np.asarray(truth, dtype=np.float64))
    p = torch.tensor(np.asarray(predicted, dtype=np.float64))
    n = y.shape[0]
    if n == 0:
        return {"mean": math.nan, "low": math.nan, "high": math.nan, "n": 0}
    generator = torch.Generator().manual_seed(seed)
    counts = torch.zeros(n_boot + 1, n, dtype=torch.float64)
    counts[0] = 1.0  # row 0: the sample itself
    counts[1:].scatter_add_(1, torch.randint(n, (n_boot, n), generator=generator), torch.ones(n_boot, n,
                                                                                              dtype=torch.float64))
    tp, fp, fn = counts @ (y * p), counts @ ((1 - y) * p), counts @ (y * (1 - p))
    denominator = 2 * tp + fp + fn
    f1 = torch.where(denominator > 0, 2 * tp / denominator.clamp_min(1e-12), torch.nan)
    macro = f1.nanmean(dim=1)
    low, high = torch.nanquantile(macro[1:], torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64))
    return {"mean": float(macro[0]), "low": float(low), "high": float(high), "n": n}


def one_hot(labels: Sequence[str], names: Sequence[str]) -> np.ndarray:
    """``(n, len(names))`` 0/1 matrix of single labels given by name."""
    index = {name: i for i, name in enumerate(names)}
    out = np.zeros((len(labels), len(names)))
    for row, label in enumerate(labels):
        if label in index:
            out[row, index[label]] = 1.0
    return out

