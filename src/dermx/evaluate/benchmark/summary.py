"""``summary.json`` of a benchmark run: every number with its CI, fold SD and undefined count.

Layout (``E`` is an estimate of :mod:`dermx.evaluate.stats`)::

    config, models, images
    diagnosis[model]         macro_f1 E, accuracy E, per_class_f1, confusion, reliability, ece, fold_macro_f1
    identification[model]    macro_f1 E, per_characteristic {name: {f1, support}}
    localization[selection][model][kind]   overall {score: E}, per_characteristic {name: {score: E}}
    baselines[selection][model][kind][baseline]   {score: E} on the model's pairs
    raters                   pairwise / leave_one_out localization blocks of rater_agreement, diagnosis,
                             identification
    paired                   [{a, b, kind, score, difference E}] for every two models, same pairs
    strata[by][model]        [{stratum, accuracy E, dice E}] by reference, skin_tone, age, correct
    shared                   images every model was scored on: counts, and per model diagnosis macro_f1 E
                             and headline-kind dice E on them (None for one model)
    shortcut                 class, per model per class: energy share on the watermark and the lesions
    headline                 rows of the summary table (models, raters, baselines)

ECE (expected calibration error) over 10 equal-width confidence bins b: Σ_b (n_b/n)·|acc_b − conf_b|.
"""

from __future__ import annotations

import math
from functools import partial
from itertools import combinations
from typing import Any, get_args

import numpy as np
import pandas as pd

from dermx import vocab
from dermx.evaluate.benchmark.config import BenchmarkResult, Selection
from dermx.evaluate.benchmark.scoring import DRAWN, KINDS, SCORES
from dermx.evaluate.stats import bootstrap_macro_f1, estimate, one_hot, paired_difference
from dermx.metrics import diagnosis_scores, identification_scores, summarize

FUZZY: tuple[str, ...] = ("sensitivity", "specificity", "dice", "iou")
STRATA: tuple[str, ...] = ("reference", "skin_tone", "age", "correct")
N_BINS = 10


def select(items: pd.DataFrame, selection: str) -> pd.DataFrame:
    """Rows of a selection: ``present``, ``predicted`` or ``correct`` (present and correctly diagnosed)."""
    if selection == "present":
        return items[items["present"].astype(bool)]
    if selection == "predicted":
        return items[items["predicted"].astype(bool)]
    if selection == "correct":
        return items[items["present"].astype(bool) & items["correct"].astype(bool)]
    raise ValueError(f"unknown selection {selection!r}; expected present, predicted or correct")


def _reliability(images: pd.DataFrame) -> dict[str, Any]:
    confidence = images["confidence"].to_numpy(dtype=float)
    correct = images["correct"].to_numpy(dtype=float)
    bins = np.minimum((confidence * N_BINS).astype(int), N_BINS - 1)
    rows, ece = [], 0.0
    for b in range(N_BINS):
        inside = bins == b
        if inside.any():
            acc, conf = correct[inside].mean(), confidence[inside].mean()
            ece += inside.mean() * abs(acc - conf)
            rows.append({"low": b / N_BINS, "high": (b + 1) / N_BINS, "n": int(inside.sum()),
                         "accuracy": float(acc), "confidence": float(conf)})
    return {"bins": rows, "ece": float(ece)}


def _diagnosis(images: pd.DataFrame, est: Any, boot: dict[str, int]) -> dict[str, Any]:
    scores = diagnosis_scores(images["reference"].tolist(), images["predicted"].tolist(), vocab.DIAGNOSES)
    per_fold = [summarize(diagnosis_scores(p["reference"].tolist(), p["predicted"].tolist(),
                                           vocab.DIAGNOSES).per_class.f1.values).mean
                for _, p in images.groupby("fold")]
    fold = summarize(per_fold)
    return {
        "macro_f1": {**bootstrap_macro_f1(one_hot(images["reference"], vocab.DIAGNOSES),
                                          one_hot(images["predicted"], vocab.DIAGNOSES), **boot),
                     "fold_mean": fold.mean, "fold_sd": fold.sd, "folds": fold.n},
        "accuracy": est(images.assign(value=images["correct"].astype(float)), "value"),
        "kappa": scores.kappa,
        "per_class_f1": dict(zip(vocab.DIAGNOSES, scores.per_class.f1.values.tolist(), strict=True)),
        "confusion": scores.confusion.tolist(),
        "labels": list(vocab.DIAGNOSES),
        "reliability": _reliability(images),
    }


def _identification(images: pd.DataFrame, chars: list[str], threshold: float,
                    boot: dict[str, int]) -> dict[str, Any]:
    truth = images[[f"char_ref:{c}" for c in chars]].to_numpy(dtype=float)
    predicted = (images[[f"char:{c}" for c in chars]].to_numpy(dtype=float) >= threshold).astype(float)
    scores = identification_scores(truth, predicted, chars)
    return {"macro_f1": bootstrap_macro_f1(truth, predicted, **boot),
            "per_characteristic": {c: {"f1": f, "support": int(s)} for c, f, s in
                                   zip(chars, scores.f1.values.tolist(), scores.support.tolist(), strict=True)}}


def scores_of(rows: pd.DataFrame, scores: tuple[str, ...] = SCORES) -> list[str]:
    """``scores`` and, where the rows carry them (synthetic data), their known-answer ``drawn_`` twins."""
    return [*scores, *(DRAWN + s for s in scores if DRAWN + s in rows)]


def _localization(rows: pd.DataFrame, est: Any, per_characteristic: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"pairs": len(rows), "overall": {s: est(rows, s) for s in scores_of(rows)}}
    if per_characteristic:
        out["per_characteristic"] = {c: {"pairs": len(part), **{s: est(part, s) for s in scores_of(rows, FUZZY)}}
                                     for c, part in rows.groupby("reference", sort=False)}
    return out


def _on_pairs(pairs: pd.DataFrame, baselines: pd.DataFrame, model: str, est: Any) -> dict[str, dict[str, Any]]:
    """Each baseline's estimates on a model's selected pairs (joined on stem and reference)."""
    mine = baselines[baselines["model"] == model].drop(columns=["fold"])
    joined = pairs[["stem", "reference", "fold"]].merge(mine, on=["stem", "reference"])
    return {name: {s: est(part, s) for s in scores_of(part)} for name, part in joined.groupby("baseline", sort=False)}


def _raters(agreement: dict[str, Any] | None) -> dict[str, Any] | None:
    if agreement is None:
        return None
    ident = [v["f1"] for k, v in agreement["identification"].items() if k in vocab.CHARACTERISTICS]
    s = summarize(ident)
    return {"pairwise": agreement["localization"], "leave_one_out": agreement["leave_one_out"],
            "diagnosis_macro_f1": agreement["diagnosis"]["rater_vs_reference"]["macro_f1"],
            "identification_f1": {"mean": s.mean, "sd": s.sd, "n": s.n}}


def _headline_kind(items: pd.DataFrame, model: str) -> str:
    mine = items[items["model"] == model]
    return "characteristic" if (mine["kind"] == "characteristic").any() else "diagnosis-union"


def shortcut_class(images: pd.DataFrame) -> str | None:
    """The class most often watermarked (the synthetic shortcut), ``None`` without watermarks."""
    if "has_watermark" not in images or not images["has_watermark"].astype(bool).any():
        return None
    return str(images.groupby("reference")["has_watermark"].mean().idxmax())


def _shortcut(images: pd.DataFrame, est: Any) -> dict[str, Any] | None:
    shortcut = shortcut_class(images)
    if shortcut is None:
        return None
    out: dict[str, Any] = {"class": shortcut, "models": {}}
    for model, mine in images.groupby("model", sort=False):
        per_class = {}
        for dx in vocab.DIAGNOSES:
            rows = mine[mine["reference"] == dx]
            marked = rows[rows["has_watermark"].astype(bool)]
            per_class[dx] = {"n": len(rows), "n_watermarked": len(marked),
                             "watermark": est(marked, "dx_energy_watermark"),
                             "lesions": est(rows, "dx_energy_lesions"),
                             "area_watermark": float(marked["area_watermark"].mean()) if len(marked) else math.nan,
                             "area_lesions": float(rows["area_lesions"].mean()) if len(rows) else math.nan}
        out["models"][model] = per_class
    return out


def _headline(summary: dict[str, Any], items: pd.DataFrame, images: pd.DataFrame, models: list[str],
              est: Any) -> list[dict[str, Any]]:
    selection = summary["config"]["selection"]
    loc = summary["localization"][selection]
    selected = select(items, selection)  # a model may have characteristic rows, none in this selection
    rows = []
    for model in models:
        kind = _headline_kind(selected, model)
        char = loc[model].get("characteristic", {}).get("overall", {})
        union = loc[model].get("diagnosis-union", {}).get("overall", {})
        headline = loc[model].get(kind, {}).get("overall", {})
        rows.append({"source": model, "type": "model", "diagnosis_f1": summary["diagnosis"][model]["macro_f1"],
                     "identification_f1": summary["identification"].get(model, {}).get("macro_f1"),
                     **{f"char_{s}": char.get(s) for s in ("dice", "sensitivity", "specificity")},
                     "union_dice": union.get("dice"), "pointing": headline.get("pointing"),
                     **_drawn(char, headline)})
    raters = summary["raters"]
    if raters:
        for label, key in (("raters, leave-one-out", "leave_one_out"), ("raters, pairwise", "pairwise")):
            overall = raters[key]["overall"]
            rows.append({"source": label, "type": "raters", "diagnosis_f1": raters["diagnosis_macro_f1"],
                         "identification_f1": raters["identification_f1"],
                         **{f"char_{s}": {"mean": overall[s], "sd": overall["sd"][s], "n": overall["pairs"]}
                            for s in ("dice", "sensitivity", "specificity")},
                         "union_dice": None, "pointing": None})
    if "experts_drawn_dice" in images:
        one = images[images["model"] == models[0]].assign(value=images["experts_drawn_dice"])
        rows.append({"source": "raters, fused map", "type": "raters", "diagnosis_f1": None,
                     "identification_f1": None, "char_dice": None, "union_dice": None, "pointing": None,
                     "char_dice_drawn": est(one.dropna(subset=["value"]), "value"), "pointing_drawn": None})
    first = models[0]
    for name, kinds in summary["baselines"][selection].get(first, {}).items():
        char, union = kinds.get("characteristic", {}), kinds.get("diagnosis-union", {})
        kind = _headline_kind(selected, first)
        rows.append({"source": f"baseline: {name}", "type": "baseline", "diagnosis_f1": None,
                     "identification_f1": None,
                     **{f"char_{s}": char.get(s) for s in ("dice", "sensitivity", "specificity")},
                     "union_dice": union.get("dice"), "pointing": kinds.get(kind, {}).get("pointing"),
                     **_drawn(char, kinds.get(kind, {}))})
    return rows


def _drawn(char: dict[str, Any], pointing: dict[str, Any]) -> dict[str, Any]:
    """Known-answer headline columns (synthetic data only): characteristic Dice and pointing against
    the drawn lesions."""
    if DRAWN + "dice" not in char:
        return {}
    return {"char_dice_drawn": char[DRAWN + "dice"], "pointing_drawn": pointing.get(DRAWN + "pointing")}


def summarize_benchmark(result: BenchmarkResult) -> dict[str, Any]:
    """The ``summary.json`` document of a run (module docstring)."""
    config = result.config
    boot = {"n_boot": config.n_boot, "seed": config.seed}
    est = partial(estimate, **boot)
    items, images, baselines = result.items, result.images, result.baselines
    models = list(result.models)
    summary: dict[str, Any] = {"config": config.to_dict(), "models": result.models,
                               "images": int(images["stem"].nunique()), "scores": list(SCORES)}
    summary["diagnosis"] = {m: _diagnosis(images[images["model"] == m], est, boot) for m in models}
    summary["identification"] = {
        m: _identification(images[images["model"] == m], info["characteristics"], config.threshold, boot)
        for m, info in result.models.items() if info["characteristics"]}
    summary["localization"], summary["baselines"] = {}, {}
    for selection in get_args(Selection):
        chosen = select(items, selection)
        loc, base = {}, {}
        for model in models:
            loc[model], base[model] = {}, {}
            for kind in KINDS:
                rows = chosen[(chosen["model"] == model) & (chosen["kind"] == kind)]
                if rows.empty:
                    continue
                loc[model][kind] = _localization(rows, est, kind != "diagnosis-union")
                for name, scores in _on_pairs(rows, baselines, model, est).items():
                    base[model].setdefault(name, {})[kind] = scores
        summary["localization"][selection], summary["baselines"][selection] = loc, base
    summary["raters"] = _raters(result.agreement)
    headline_rows = select(items, config.selection)
    summary["paired"] = [
        {"a": a, "b": b, "kind": kind, "score": "dice",
         "difference": paired_difference(headline_rows[(headline_rows["model"] == a) & (headline_rows["kind"] == kind)],
                                         headline_rows[(headline_rows["model"] == b) & (headline_rows["kind"] == kind)],
                                         "dice", **boot)}
        for a, b in combinations(models, 2) for kind in ("characteristic", "diagnosis-union")]
    with_strata = headline_rows.merge(images[["model", "stem", "reference", "skin_tone", "age"]],
                                      on=["model", "stem"], suffixes=("", "_image"))
    with_strata = with_strata.drop(columns=["reference"]).rename(columns={"reference_image": "reference"})
    summary["strata"] = {by: {m: _strata(images[images["model"] == m],
                                         with_strata[(with_strata["model"] == m)
                                                     & (with_strata["kind"] == _headline_kind(items, m))], by, est)
                              for m in models} for by in STRATA}
    summary["shortcut"] = _shortcut(images, est)
    summary["shared"] = _shared(items, images, models, config.selection, est, boot)
    summary["headline"] = _headline(summary, items, images, models, est)
    return summary


def _shared(items: pd.DataFrame, images: pd.DataFrame, models: list[str], selection: str, est: Any,
            boot: dict[str, int]) -> dict[str, Any] | None:
    """Models compared on the images all of them were scored on (each model's own set is the rest of the
    summary): the count per model and shared, diagnosis macro F1 and headline-map Dice on the shared ones."""
    if len(models) < 2:
        return None
    own = {m: set(images.loc[images["model"] == m, "stem"]) for m in models}
    common = set.intersection(*own.values())
    out: dict[str, Any] = {"images": len(common), "per_model": {m: len(s) for m, s in own.items()}, "models": {}}
    chosen = select(items, selection)
    for m in models:
        mine = images[(images["model"] == m) & images["stem"].isin(common)]
        kind = _headline_kind(items, m)
        rows = chosen[(chosen["model"] == m) & (chosen["kind"] == kind) & chosen["stem"].isin(common)]
        out["models"][m] = {
            "diagnosis_macro_f1": bootstrap_macro_f1(one_hot(mine["reference"], vocab.DIAGNOSES),
                                                     one_hot(mine["predicted"], vocab.DIAGNOSES), **boot),
            "kind": kind, "dice": est(rows, "dice")}
    return out


def _strata(images: pd.DataFrame, rows: pd.DataFrame, by: str, est: Any) -> list[dict[str, Any]]:
    out = []
    for value, part in images.groupby(by, sort=True):
        loc = rows[rows[by] == value]
        out.append({"stratum": str(value), "images": len(part),
                    "accuracy": est(part.assign(value=part["correct"].astype(float)), "value"),
                    "dice": est(loc, "dice")})
    return out
