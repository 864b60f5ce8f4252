"""``summary.json`` of a benchmark run: every number with its CI, what the CI is over, and its test.

Layout (``E`` is an estimate of :mod:`dermx.evaluate.stats`: mean, 95 % CI, the unit resampled;
intervals are over patients wherever the images have patient ids)::

    config, models, images, patients, scores, pointing_tolerance
    diagnosis[model]         macro_f1 E, accuracy E, per_class_f1, confusion, reliability, ece
    identification[model]    macro_f1 E, per_characteristic {name: {f1, support}}
    detection[model]         miss_rate E (present pairs the model calls absent), false_positive_maps E
                             (maps shown of characteristics no rater outlined, among those shown)
    localization[selection][model][kind]   overall {score: E}, per_characteristic {name: {score: E}}
    baselines[selection][model][kind][baseline]   {score: E} on the model's own pairs
    versus_baselines[model][column][baseline]     paired E of model − baseline on the model's pairs, at
                             the Bonferroni level over the baselines (``level``); "above" = low > 0
    ceiling[model]           {kind: {overall: {score: E}, per_characteristic}}: the raters scored exactly
                             as the model, on the model's selected pairs (:mod:`.ceiling`)
    rater_answers[model]     diagnosis_f1 E (each rater against the reference), identification_f1 E
                             (each rater against the others), mean over raters, on the model's images
    gap_closed[model]        {column: E}: (model − best baseline) / (ceiling − best baseline), drawn jointly
    raters                   the conditional agreement of :func:`~dermx.evaluate.agreement.interrater.rater_agreement`
                             (raters who outlined a characteristic, images where two did): leave_one_out,
                             pairwise (unordered pairs for Dice and IoU), diagnosis, identification
    paired                   [{a, b, kind, score, difference E}] for every two models, same pairs
    strata[by][model]        [{stratum, images, accuracy (Wilson), dice E}] by reference, skin_tone, age, correct
    groups                   {by, scores, coverage, models: {model: {kind, level, groups: {value: {images,
                             patients, accuracy E, macro_f1 E, dice E, pointing E, gap: {score: E of group −
                             rest}}}}}} (:mod:`.groups`), by: skin_tone or the attribute of a groups file;
                             coverage: test images grouped as unknown, rows of the file naming other images
                             (:meth:`~dermx.evaluate.image_groups.ImageGroups.coverage`); with a leaderboard of
                             the run's method, deletion_auc E and its gap too, and groups.deletion_auc says on
                             which images (:func:`dermx.evaluate.pipeline.run_evaluation`)
    calibration[model]       ECEs, Brier, NLL per group (of ``groups.by``), uncalibrated and with the model's
                             calibration
    conformal[model]         diagnosis sets' coverage and size per group, marginal and Mondrian
    selective[model]         AURC per group; the abstention rule at ``abstain_risk`` (:mod:`.trust`)
    shared                   images every model was scored on: counts, per model macro_f1 E and Dice E
    shortcut                 class, per model per class: energy share on the watermark and the lesions
    interventions            (``--interventions`` only) models: {model: curves {uncertain, random: [{k, macro_f1 E,
                             accuracy E}]}, gain, lift, reliance {plain, constant, shuffled: {macro_f1 E, drop E}}},
                             skipped: {model: reason} (:mod:`.interventions`)
    headline                 rows of the summary table (models, raters, baselines)

ECE (expected calibration error) over 10 equal-width confidence bins b: Σ_b (n_b/n)·|acc_b − conf_b|.
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any, get_args

import numpy as np
import pandas as pd

from dermx import vocab
from dermx.choices import Selection
from dermx.evaluate.benchmark.ceiling import pair_ceiling
from dermx.evaluate.benchmark.config import BenchmarkResult
from dermx.evaluate.benchmark.groups import group_summary
from dermx.evaluate.benchmark.scoring import DRAWN, KINDS, SCORES
from dermx.evaluate.benchmark.trust import trust_summary
from dermx.evaluate.stats import (
    Clusters,
    bonferroni,
    bootstrap_macro_f1,
    estimate,
    gap_closed,
    image_means,
    mean_macro_f1,
    one_hot,
    one_thread,
    paired_difference,
    proportion,
    ratio_estimate,
)
from dermx.metrics import diagnosis_scores, identification_scores, summarize

FUZZY: tuple[str, ...] = ("sensitivity", "specificity", "dice", "iou")
STRATA: tuple[str, ...] = ("reference", "skin_tone", "age", "correct")
N_BINS = 10
#: Headline localization columns: (map kind, or ``None`` for the model's headline kind; score).
COLUMNS: dict[str, tuple[str | None, str]] = {
    "char_dice": ("characteristic", "dice"), "char_sensitivity": ("characteristic", "sensitivity"),
    "char_specificity": ("characteristic", "specificity"), "union_dice": ("diagnosis-union", "dice"),
    "pointing": (None, "pointing"), "char_dice_drawn": ("characteristic", DRAWN + "dice"),
    "pointing_drawn": (None, DRAWN + "pointing"),
}
#: The columns on which a model is tested against every baseline, and the source of their ceiling.
TESTED: dict[str, str | None] = {"char_dice": "ceiling", "union_dice": "ceiling", "pointing": "ceiling",
                                 "char_dice_drawn": "experts_drawn", "pointing_drawn": None}


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


class _Stats:
    """The run's statistics settings: bootstrap resamples and seed, and each stem's patient."""

    def __init__(self, result: BenchmarkResult) -> None:
        self.n_boot, self.seed = result.config.n_boot, result.config.seed
        self.boot: dict[str, Any] = {"n_boot": self.n_boot, "seed": self.seed}
        self.clusters: Clusters = result.images.drop_duplicates("stem").set_index("stem")["patient"].astype(str)

    def est(self, rows: pd.DataFrame, score: str) -> dict[str, Any]:
        """:func:`~dermx.evaluate.stats.estimate` over the run's patients."""
        return estimate(rows, score, clusters=self.clusters, n_boot=self.n_boot, seed=self.seed)

    def rows_of(self, stems: pd.Series) -> list[str]:
        """The patient of each row's stem (the cluster labels of per-row bootstraps)."""
        assert self.clusters is not None
        return [self.clusters.get(s, s) for s in stems]


def _diagnosis(images: pd.DataFrame, stats: _Stats) -> dict[str, Any]:
    scores = diagnosis_scores(images["reference"].tolist(), images["predicted"].tolist(), vocab.DIAGNOSES)
    return {
        "macro_f1": bootstrap_macro_f1(one_hot(images["reference"], vocab.DIAGNOSES),
                                       one_hot(images["predicted"], vocab.DIAGNOSES),
                                       clusters=stats.rows_of(images["stem"]), **stats.boot),
        "accuracy": stats.est(images.assign(value=images["correct"].astype(float)), "value"),
        "kappa": scores.kappa,
        "per_class_f1": dict(zip(vocab.DIAGNOSES, scores.per_class.f1.values.tolist(), strict=True)),
        "confusion": scores.confusion.tolist(),
        "labels": list(vocab.DIAGNOSES),
        "reliability": _reliability(images),
    }


def _identification(images: pd.DataFrame, chars: list[str], threshold: float, stats: _Stats) -> dict[str, Any]:
    truth = images[[f"char_ref:{c}" for c in chars]].to_numpy(dtype=float)
    predicted = (images[[f"char:{c}" for c in chars]].to_numpy(dtype=float) >= threshold).astype(float)
    scores = identification_scores(truth, predicted, chars)
    return {"macro_f1": bootstrap_macro_f1(truth, predicted, clusters=stats.rows_of(images["stem"]), **stats.boot),
            "per_characteristic": {c: {"f1": f, "support": int(s)} for c, f, s in
                                   zip(chars, scores.f1.values.tolist(), scores.support.tolist(), strict=True)}}


def _detection(rows: pd.DataFrame, stats: _Stats) -> dict[str, Any]:
    """Miss rate and false-positive maps of a model's characteristic rows (all of them, every selection):
    misses / present pairs, and maps shown of characteristics no rater outlined / maps shown."""
    present, predicted = rows["present"].astype(bool), rows["predicted"].astype(bool)
    counts = pd.DataFrame({"stem": rows["stem"], "miss": present & ~predicted, "unseen": predicted & ~present,
                           "present": present, "predicted": predicted}).groupby("stem").sum().astype(float)
    return {"miss_rate": ratio_estimate(counts["miss"], counts["present"], clusters=stats.clusters, **stats.boot),
            "false_positive_maps": ratio_estimate(counts["unseen"], counts["predicted"], clusters=stats.clusters,
                                                  **stats.boot)}


def scores_of(rows: pd.DataFrame, scores: tuple[str, ...] = SCORES) -> list[str]:
    """``scores`` and, where the rows carry them (synthetic data), their known-answer ``drawn_`` twins."""
    return [*scores, *(DRAWN + s for s in scores if DRAWN + s in rows)]


def _localization(rows: pd.DataFrame, est: Any, per_characteristic: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"pairs": len(rows), "overall": {s: est(rows, s) for s in scores_of(rows)}}
    if per_characteristic:
        out["per_characteristic"] = {c: {"pairs": len(part), **{s: est(part, s) for s in scores_of(rows, FUZZY)}}
                                     for c, part in rows.groupby("reference", sort=False)}
    return out


def _on_pairs(pairs: pd.DataFrame, baselines: pd.DataFrame, model: str) -> dict[str, pd.DataFrame]:
    """Each baseline's rows on a model's selected pairs (joined on stem and reference), with the pairs'
    ``kind`` and ``fold``."""
    mine = baselines[baselines["model"] == model].drop(columns=["fold"]).drop_duplicates(["stem", "reference",
                                                                                          "baseline"])
    joined = pairs[["stem", "kind", "reference", "fold"]].merge(mine, on=["stem", "reference"])
    return {str(name): part for name, part in joined.groupby("baseline", sort=False)}


def _headline_kind(items: pd.DataFrame, model: str) -> str:
    mine = items[items["model"] == model]
    return "characteristic" if (mine["kind"] == "characteristic").any() else "diagnosis-union"


def _column_rows(rows: pd.DataFrame, column: str, headline_kind: str) -> tuple[pd.DataFrame, str]:
    kind, score = COLUMNS[column]
    return rows[rows["kind"] == (kind or headline_kind)], score


def _versus_baselines(selected: pd.DataFrame, on_pairs: dict[str, pd.DataFrame], headline_kind: str,
                      stats: _Stats) -> dict[str, dict[str, Any]]:
    """Per tested column and baseline: the paired difference model − baseline on the model's pairs, at
    the Bonferroni level over the baselines."""
    level = bonferroni(len(on_pairs))
    out: dict[str, dict[str, Any]] = {}
    for column in TESTED:
        mine, score = _column_rows(selected, column, headline_kind)
        if score not in mine or mine[score].notna().sum() == 0:
            continue
        out[column] = {name: paired_difference(mine, _column_rows(base, column, headline_kind)[0], score,
                                               clusters=stats.clusters, level=level, **stats.boot)
                       for name, base in on_pairs.items()}
    return out


def _ceiling(selected: pd.DataFrame, ceiling: pd.DataFrame, est: Any) -> dict[str, Any]:
    """The raters scored as the model, on the model's selected characteristic and union pairs."""
    pairs = pair_ceiling(ceiling)
    out: dict[str, Any] = {}
    for kind in ("characteristic", "diagnosis-union"):
        keys = selected.loc[selected["kind"] == kind, ["stem", "reference", "fold"]].drop_duplicates(["stem",
                                                                                                     "reference"])
        rows = keys.merge(pairs[pairs["kind"] == kind], on=["stem", "reference"])
        if not rows.empty:
            out[kind] = _localization(rows, est, kind == "characteristic")
    return out


def _rater_answers(images: pd.DataFrame, answers: pd.DataFrame, chars: list[str], stats: _Stats) -> dict[str, Any]:
    """Each rater against the reference diagnosis, and against the other raters on the characteristics,
    on a model's images: the mean over raters of their macro F1, images resampled by patient."""
    stems = images.drop_duplicates("stem")["stem"].tolist()
    index = {s: i for i, s in enumerate(stems)}
    mine = answers[answers["stem"].isin(index)]
    reference = images.drop_duplicates("stem").set_index("stem")["reference"]
    columns = [f"sel:{c}" for c in chars]
    selected = mine.groupby("stem")[columns].sum() if chars else None
    diagnosis, identification = [], []
    for _, part in mine.groupby("rater", sort=True):
        rows = [index[s] for s in part["stem"]]
        diagnosis.append((rows, one_hot(reference.loc[part["stem"]].tolist(), vocab.DIAGNOSES),
                          one_hot(part["diagnosis"].tolist(), vocab.DIAGNOSES)))
        if selected is not None:
            own = part[columns].to_numpy(dtype=float)
            others = (selected.loc[part["stem"]].to_numpy(dtype=float) - own) > 0
            identification.append((rows, others.astype(float), own))
    clusters = stats.rows_of(pd.Series(stems))
    out = {"diagnosis_f1": mean_macro_f1(diagnosis, len(stems), clusters=clusters, **stats.boot)}
    if identification:
        out["identification_f1"] = mean_macro_f1(identification, len(stems), clusters=clusters, **stats.boot)
    return out


def _raters(agreement: dict[str, Any] | None) -> dict[str, Any] | None:
    """The conditional rater agreement (raters who outlined a characteristic, on images where two did)."""
    if agreement is None:
        return None
    ident = [v["f1"] for k, v in agreement["identification"].items() if k in vocab.CHARACTERISTICS]
    s = summarize(ident)
    return {"pairwise": agreement["localization"], "leave_one_out": agreement["leave_one_out"],
            "diagnosis_macro_f1": agreement["diagnosis"]["rater_vs_reference"]["macro_f1"],
            "identification_f1": {"mean": s.mean, "sd": s.sd, "n": s.n}}


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


def _experts_drawn(images: pd.DataFrame, model: str) -> pd.DataFrame:
    one = images[images["model"] == model]
    return one.assign(value=one["experts_drawn_dice"]).dropna(subset=["value"])


def _gap_closed(model: str, selected: pd.DataFrame, on_pairs: dict[str, pd.DataFrame], ceiling: dict[str, Any],
                pair_ceilings: pd.DataFrame, images: pd.DataFrame, headline_kind: str,
                stats: _Stats) -> dict[str, Any]:
    """Per tested column with a ceiling: the share of the gap from the best baseline (highest mean on the
    model's pairs) to the ceiling that the model closes, the three image-mean series drawn jointly."""
    out: dict[str, Any] = {}
    for column, source in TESTED.items():
        mine, score = _column_rows(selected, column, headline_kind)
        if source is None or score not in mine or mine[score].notna().sum() == 0 or not on_pairs:
            continue
        bases = {name: image_means(_column_rows(base, column, headline_kind)[0], score)
                 for name, base in on_pairs.items()}
        best = max(bases, key=lambda name: bases[name].mean())
        if source == "ceiling":
            kind = COLUMNS[column][0] or headline_kind
            keys = mine[["stem", "reference"]].drop_duplicates()
            top = keys.merge(pair_ceilings[pair_ceilings["kind"] == kind], on=["stem", "reference"])
            if top.empty or not ceiling:
                continue
            roof = image_means(top, score)
        else:
            roof = _experts_drawn(images, model).set_index("stem")["value"]
        out[column] = {**gap_closed(image_means(mine, score), bases[best], roof, clusters=stats.clusters,
                                    **stats.boot), "baseline_name": best, "ceiling_source": source}
    return out


def _model_sections(result: BenchmarkResult, stats: _Stats, summary: dict[str, Any]) -> None:
    """Every per-model block of the summary (module docstring)."""
    config = result.config
    items, images, baselines = result.items, result.images, result.baselines
    pair_ceilings = pair_ceiling(result.ceiling)
    for key in ("diagnosis", "identification", "detection", "versus_baselines", "ceiling", "rater_answers",
                "gap_closed"):
        summary[key] = {}
    summary["localization"] = {s: {} for s in get_args(Selection)}
    summary["baselines"] = {s: {} for s in get_args(Selection)}
    for model, info in result.models.items():
        mine_images = images[images["model"] == model]
        mine_items = items[items["model"] == model]
        chars = info["characteristics"]
        summary["diagnosis"][model] = _diagnosis(mine_images, stats)
        if chars:
            summary["identification"][model] = _identification(mine_images, chars, config.threshold, stats)
            summary["detection"][model] = _detection(mine_items[mine_items["kind"] == "characteristic"], stats)
        for selection in get_args(Selection):
            chosen = select(mine_items, selection)
            loc: dict[str, Any] = {}
            base: dict[str, Any] = {}
            for kind in KINDS:
                rows = chosen[chosen["kind"] == kind]
                if rows.empty:
                    continue
                loc[kind] = _localization(rows, stats.est, kind != "diagnosis-union")
                for name, part in _on_pairs(rows, baselines, model).items():
                    base.setdefault(name, {})[kind] = {s: stats.est(part, s) for s in scores_of(part)}
            summary["localization"][selection][model], summary["baselines"][selection][model] = loc, base
        selected = select(mine_items, config.selection)
        headline_kind = _headline_kind(selected, model)
        on_pairs = _on_pairs(selected, baselines, model)
        summary["versus_baselines"][model] = _versus_baselines(selected, on_pairs, headline_kind, stats)
        mine_ceiling = result.ceiling[result.ceiling["model"] == model]
        summary["ceiling"][model] = _ceiling(selected, mine_ceiling, stats.est) if len(mine_ceiling) else {}
        if len(result.raters):
            summary["rater_answers"][model] = _rater_answers(mine_images, result.raters, chars, stats)
        summary["gap_closed"][model] = _gap_closed(model, selected, on_pairs, summary["ceiling"][model],
                                                   pair_ceilings[pair_ceilings["stem"].isin(mine_images["stem"])],
                                                   images, headline_kind, stats)


def summarize_benchmark(result: BenchmarkResult) -> dict[str, Any]:
    """The ``summary.json`` document of a run (module docstring)."""
    config = result.config
    stats = _Stats(result)
    items, images = result.items, result.images
    models = list(result.models)
    summary: dict[str, Any] = {"config": config.to_dict(), "models": result.models,
                               "images": int(images["stem"].nunique()), "patients": int(images["patient"].nunique()),
                               "scores": list(SCORES)}
    _model_sections(result, stats, summary)
    summary["raters"] = _raters(result.agreement)
    headline_rows = select(items, config.selection)
    summary["paired"] = [
        {"a": a, "b": b, "kind": kind, "score": "dice",
         "difference": paired_difference(headline_rows[(headline_rows["model"] == a) & (headline_rows["kind"] == kind)],
                                         headline_rows[(headline_rows["model"] == b) & (headline_rows["kind"] == kind)],
                                         "dice", clusters=stats.clusters, **stats.boot)}
        for a, b in combinations(models, 2) for kind in ("characteristic", "diagnosis-union")]
    with_strata = headline_rows.merge(images[["model", "stem", "reference", "skin_tone", "age"]],
                                      on=["model", "stem"], suffixes=("", "_image"))
    with_strata = with_strata.drop(columns=["reference"]).rename(columns={"reference_image": "reference"})
    summary["strata"] = {by: {m: _strata(images[images["model"] == m],
                                         with_strata[(with_strata["model"] == m)
                                                     & (with_strata["kind"] == _headline_kind(items, m))], by, stats)
                              for m in models} for by in STRATA}
    selected_kinds = {m: _headline_kind(headline_rows, m) for m in models}
    by = result.groups.by
    with one_thread():
        summary["groups"] = {**group_summary(images, headline_rows, selected_kinds, by=by, clusters=stats.clusters,
                                             **stats.boot),
                             "coverage": result.groups.coverage(images["stem"])}
        summary.update(trust_summary(images, result.models, result.calibrations, by=by, clusters=stats.clusters,
                                     target_risk=config.abstain_risk, **stats.boot))
    summary["shortcut"] = _shortcut(images, stats.est)
    summary["shared"] = _shared(items, images, models, config.selection, stats)
    summary["headline"] = _headline(summary, items, images, models, stats)
    return summary


def _shared(items: pd.DataFrame, images: pd.DataFrame, models: list[str], selection: str,
            stats: _Stats) -> dict[str, Any] | None:
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
                                                     one_hot(mine["predicted"], vocab.DIAGNOSES),
                                                     clusters=stats.rows_of(mine["stem"]), **stats.boot),
            "kind": kind, "dice": stats.est(rows, "dice")}
    return out


def _strata(images: pd.DataFrame, rows: pd.DataFrame, by: str, stats: _Stats) -> list[dict[str, Any]]:
    out = []
    for value, part in images.groupby(by, sort=True):
        loc = rows[rows[by] == value]
        out.append({"stratum": str(value), "images": len(part), "patients": int(part["patient"].nunique()),
                    "accuracy": proportion(int(part["correct"].astype(bool).sum()), len(part)),
                    "dice": stats.est(loc, "dice")})
    return out


def _model_row(summary: dict[str, Any], model: str, kind: str) -> dict[str, Any]:
    selection = summary["config"]["selection"]
    loc = summary["localization"][selection][model]
    row: dict[str, Any] = {"source": model, "type": "model", "diagnosis_f1": summary["diagnosis"][model]["macro_f1"],
                           "identification_f1": summary["identification"].get(model, {}).get("macro_f1"),
                           "miss_rate": summary["detection"].get(model, {}).get("miss_rate")}
    for column, (column_kind, score) in COLUMNS.items():
        value = loc.get(column_kind or kind, {}).get("overall", {}).get(score)
        if value is not None or not score.startswith(DRAWN):
            row[column] = value
    return row


def _ceiling_row(summary: dict[str, Any], model: str, kind: str, label: str) -> dict[str, Any]:
    ceiling = summary["ceiling"][model]
    answers = summary["rater_answers"].get(model, {})
    row: dict[str, Any] = {"source": label, "type": "raters", "diagnosis_f1": answers.get("diagnosis_f1"),
                           "identification_f1": answers.get("identification_f1"), "miss_rate": None}
    for column, (column_kind, score) in COLUMNS.items():
        if not score.startswith(DRAWN):
            row[column] = ceiling.get(column_kind or kind, {}).get("overall", {}).get(score)
    return row


def _headline(summary: dict[str, Any], items: pd.DataFrame, images: pd.DataFrame, models: list[str],
              stats: _Stats) -> list[dict[str, Any]]:
    selection = summary["config"]["selection"]
    selected = select(items, selection)  # a model may have characteristic rows, none in this selection
    kinds = {m: _headline_kind(selected, m) for m in models}
    rows = [_model_row(summary, m, kinds[m]) for m in models]
    ceilings: dict[str, list[str]] = {}
    for m in models:
        if summary["ceiling"].get(m):
            ceilings.setdefault(repr(_ceiling_row(summary, m, kinds[m], "")), []).append(m)
    for owners in ceilings.values():
        label = ("raters, leave-one-out" if len(ceilings) == 1 else
                 f"raters, leave-one-out ({', '.join(owners)}'s pairs)")
        rows.append(_ceiling_row(summary, owners[0], kinds[owners[0]], label))
    raters = summary["raters"]
    if raters:
        for label, key in (("raters, leave-one-out, conditional", "leave_one_out"),
                           ("raters, pairwise, conditional", "pairwise")):
            overall = raters[key]["overall"]
            rows.append({"source": label, "type": "raters-conditional", "diagnosis_f1": raters["diagnosis_macro_f1"],
                         "identification_f1": raters["identification_f1"], "miss_rate": None,
                         **{f"char_{s}": {"mean": overall[s], "sd": overall["sd"][s], "n": overall["pairs"]}
                            for s in ("dice", "sensitivity", "specificity")},
                         "union_dice": None, "pointing": None})
    if "experts_drawn_dice" in images:
        rows.append({"source": "raters, fused map", "type": "raters", "diagnosis_f1": None, "identification_f1": None,
                     "miss_rate": None, "char_dice": None, "union_dice": None, "pointing": None,
                     "char_dice_drawn": stats.est(_experts_drawn(images, models[0]), "value"), "pointing_drawn": None})
    first = models[0]
    for name, by_kind in summary["baselines"][selection].get(first, {}).items():
        row: dict[str, Any] = {"source": f"baseline: {name}", "type": "baseline", "diagnosis_f1": None,
                               "identification_f1": None, "miss_rate": None}
        for column, (column_kind, score) in COLUMNS.items():
            value = by_kind.get(column_kind or kinds[first], {}).get(score)
            if value is not None or not score.startswith(DRAWN):
                row[column] = value
        rows.append(row)
    return rows
