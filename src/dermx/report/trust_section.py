"""The report's section "Trust per skin tone" (or per the attribute of the run's ``--groups`` file), from
``summary.json``'s ``groups``, ``calibration``, ``conformal`` and ``selective`` keys (written by ``dermx
evaluate``; layout in :mod:`dermx.evaluate.benchmark.groups` and :mod:`dermx.evaluate.benchmark.trust`).

:func:`trust_section` returns an HTML fragment, empty for a run from before these keys: per model a table
of its groups (images, accuracy, ECE before and after the model's calibration, the diagnosis sets'
coverage and size, map Dice, with a leaderboard the deletion AUC, and the gaps to the rest with their
CIs), a sentence for the calibration the model carries (or that it carries none), and its reliability
diagrams per group (:func:`dermx.report.figures.reliability_per_group`).
"""

from __future__ import annotations

import base64
import html
from typing import Any

import pandas as pd

from dermx.report import figures
from dermx.report.verdict import group_words, grouped_by

__all__ = ["trust_frame", "trust_section"]

INTRO = ("Each {group} against the rest of the model's test images. Accuracy and map Dice: mean over images with "
         "a bootstrap 95 % CI over patients; gap: group − rest, the patients of all the images resampled together "
         "(the gaps of one score Bonferroni-adjusted over the {group}s). ECE: expected calibration error of the "
         "top-1 confidence ({bins} equal-width bins) of the model's own probabilities (before) and after the "
         "temperature scaling its checkpoint carries, fitted on its validation images (never on these). Diagnosis "
         "sets: the conformal sets of the model's calibration at error rate α, each {group} with its own "
         "threshold (Mondrian) where the validation images allowed one; coverage is the share of sets holding "
         "the true diagnosis (Wilson CI), promised ≥ 1 − α only for images like the validation ones.")
#: Added to :data:`INTRO` when the groups carry the leaderboard's deletion AUC.
DELETION = (" Deletion AUC: the {method} map of the predicted diagnosis deleted step by step ({steps} steps, blur "
            "baseline), the area under the model's score (lower: more faithful to the model), on {images}; its "
            "gaps are Bonferroni-adjusted over the {group}s among them.")


def _cell(value: Any, gap: bool = False) -> str:
    """An estimate as ``0.812 [0.701, 0.903]``, ``–`` where missing or undefined; a ``gap`` signed, marked ⚠
    when its CI excludes 0 (``⚠ -0.050 [-0.090, -0.010]``)."""
    if not isinstance(value, dict) or value.get("mean") is None or value["mean"] != value["mean"]:
        return "–"
    number = "{:+.3f}" if gap else "{:.3f}"
    low, high = value.get("low"), value.get("high")
    if low is None or high is None or low != low or high != high:
        return number.format(value["mean"])
    flag = "⚠ " if gap and (low > 0 or high < 0) else ""
    return f"{flag}{number.format(value['mean'])} [{number.format(low)}, {number.format(high)}]"


def trust_frame(summary: dict[str, Any], model: str) -> pd.DataFrame:
    """One model's table: one row per group (``all`` first where the trust keys have it), the first column
    named after the attribute (``skin tone``); the deletion AUC's columns only where the groups carry it."""
    attribute, _ = group_words(grouped_by(summary))
    deletion = summary["groups"].get("deletion_auc")
    groups = summary["groups"]["models"][model]["groups"]
    calibration = summary.get("calibration", {}).get(model, {})
    before = (calibration.get("uncalibrated") or {}).get("groups", {})
    after = (calibration.get("calibrated") or {}).get("groups", {})
    sets = (summary.get("conformal", {}).get(model, {}).get("mondrian") or {}).get("groups", {})
    rows = []
    for name in [*(["all"] if "all" in before else []), *groups]:
        group = groups.get(name, {})
        rows.append({
            attribute: name,
            "images (patients)": f"{group['images']} ({group['patients']})" if group else
            str(before[name]["ece"]["n"]),
            "accuracy": _cell(group.get("accuracy")),
            "ECE before": _cell(before.get(name, {}).get("ece")),
            "ECE after": _cell(after.get(name, {}).get("ece")),
            "set coverage": _cell(sets.get(name, {}).get("coverage")),
            "set size": _cell(sets.get(name, {}).get("mean_size")),
            "map Dice": _cell(group.get("dice")),
            "accuracy gap vs rest": _cell(group.get("gap", {}).get("accuracy"), gap=True),
            "Dice gap vs rest": _cell(group.get("gap", {}).get("dice"), gap=True),
            **({f"{deletion['method']} deletion AUC": _cell(group.get("deletion_auc")),
                "deletion AUC gap vs rest": _cell(group.get("gap", {}).get("deletion_auc"), gap=True)}
               if deletion else {}),
        })
    return pd.DataFrame(rows)


def _calibration_note(summary: dict[str, Any], model: str) -> str:
    """What calibration the model carries, or why there are no calibrated figures."""
    calibration = summary.get("calibration", {}).get(model, {})
    conformal = summary.get("conformal", {}).get(model, {})
    if calibration.get("calibrated") is None:
        return f"{model}: no calibrated figures: {calibration.get('note') or 'not computed'}."
    by = grouped_by(summary)
    _, group = group_words(by)
    fitted = calibration.get("fitted", [])
    temperatures = ", ".join(f"T = {f['temperature']:.2f}" + (
        f" (per {group_words(f['group_key'] or by)[0]}: "
        + ", ".join(f"{g} {t:.2f}" for g, t in f["group_temperatures"].items()) + ")"
        if f["group_temperatures"] else "") + f" on {f['validation_images']} validation images" for f in fitted)
    text = f"{model}: temperature scaling {temperatures}."
    marginal = conformal.get("marginal") or {}
    if marginal:
        worst = marginal.get("worst_group")
        text += (f" Diagnosis sets at α = {conformal['alpha']}: marginal coverage "
                 f"{_cell(marginal['groups']['all']['coverage'])}, worst {group} {worst} "
                 f"{_cell(marginal['groups'].get(worst, {}).get('coverage'))}")
        keys = sorted({str(f["group_key"]) for f in fitted if f["group_key"] and f["group_key"] != by})
        if keys:  # thresholds fitted per another attribute's values say nothing of these groups
            text += (f"; the calibration has no threshold per {group} (its groups are values of "
                     f"{', '.join(group_words(k)[0] for k in keys)}): every {group} uses the marginal one.")
        else:
            text += f"; with one threshold per {group} the worst is {conformal['mondrian']['worst_group']}."
            if conformal["mondrian"].get("fallback"):
                text += (f" No threshold of their own (marginal used): "
                         f"{', '.join(conformal['mondrian']['fallback'])}.")
    selective = summary.get("selective", {}).get(model, {})
    answered = (selective.get("calibrated") or {}).get("all")
    if answered:
        text += (f" Abstaining below the confidence that kept the validation error at {selective['target_risk']}: "
                 f"answers {_cell(answered['answered'])} of the test images, error among them "
                 f"{_cell(answered['risk'])}.")
    return text


def trust_section(summary: dict[str, Any], table: Any) -> str:
    """The section (module docstring); ``table`` renders a data frame as HTML. Empty for an older run."""
    if not summary.get("groups"):
        return ""
    bins = next((c.get("bins") for c in summary.get("calibration", {}).values()), 15)
    attribute, group = group_words(grouped_by(summary))
    intro = INTRO.format(bins=bins, group=group)
    deletion = summary["groups"].get("deletion_auc")
    if deletion:
        intro += DELETION.format(group=group, **deletion)
    parts = [f"<h2>Trust per {html.escape(attribute)}</h2>", f"<p class='note'>{html.escape(intro)}</p>"]
    for model in summary["groups"]["models"]:
        parts += [f"<h3>{html.escape(model)}</h3>", table(trust_frame(summary, model)),
                  f"<p class='note'>{html.escape(_calibration_note(summary, model))}</p>"]
        if (summary.get("calibration", {}).get(model) or {}).get("uncalibrated"):
            data = figures.reliability_per_group(summary, model)
            parts.append(f'<img alt="reliability per {html.escape(attribute)} {html.escape(model)}" '
                         f'src="data:image/png;base64,{base64.b64encode(data).decode()}">')
    return "".join(parts)
