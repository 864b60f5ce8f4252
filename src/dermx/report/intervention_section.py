"""The report's section "Clinician in the loop", from ``summary.json``'s ``interventions`` key (``dermx evaluate
--interventions``; layout and formulas in :mod:`dermx.evaluate.benchmark.interventions`).

:func:`intervention_section` returns an HTML fragment, empty for a run without the key: the curves of every
measured model (:func:`dermx.report.figures.intervention_curves`), one sentence per model
(:func:`model_sentences`), the reliance table (:func:`reliance_frame`), each model's curve as a table, and the
models not measured with the reason.
"""

from __future__ import annotations

import base64
import html
from typing import Any

import pandas as pd

from dermx.report import figures
from dermx.report.verdict import Estimate, relation

__all__ = ["curve_frame", "intervention_section", "model_sentences", "reliance_frame"]

TITLE = "Clinician in the loop: correcting characteristics"
INTRO = ("How much a model's diagnosis gains when a clinician corrects k of its characteristics to the raters' "
         "majority label (present when more than half of an image's raters outlined it), each set by the model's "
         "own rule (present: the 95th percentile of its training logits of that characteristic; absent: the 5th), "
         "the most uncertain first (the characteristic whose probability is nearest 0.5) or in a random order "
         "({draws} draws, F1 averaged over them). Diagnosis macro F1 with a bootstrap 95 % CI over patients; every "
         "difference is paired (the same resamples for every k and order). Reliance: F1 with every characteristic "
         "logit replaced by its training mean (for an older rule, the midpoint of its two percentiles) or by "
         "another test image's (shuffled, {draws} draws); drop = F1 as is − F1 replaced. A "
         "diagnosis that does not read its characteristics drops by 0 and gains nothing from corrections.")


def _estimate(value: Any) -> str:
    found = Estimate.of(value)
    return str(found) if found is not None else "–"


def _signed(value: Any) -> str:
    found = Estimate.of(value)
    return found.signed() if found is not None else "–"


def _change(value: Any) -> tuple[str, str]:
    """The verb of a paired change of F1 and its qualifier (module docstring of
    :mod:`dermx.report.verdict`: above / below 0 when its CI lies there)."""
    where = relation(Estimate.of(value))
    if where == "above":
        return "lifts", ""
    if where == "below":
        return "lowers", ""
    return "moves", ": not distinguishable from no change"


def model_sentences(summary: dict[str, Any], model: str) -> list[str]:
    """What correcting the most uncertain characteristics does to ``model``'s diagnosis, correcting all of them,
    and its reliance on them, e.g. "DermX: correcting the 3 most uncertain characteristics lifts diagnosis
    macro F1 from 0.612 to 0.700 [0.650, 0.750] (+0.088 [+0.040, +0.130], paired) ...". """
    block = summary["interventions"]["models"][model]
    lift, k, k_max = block["lift"], block["lift"]["k"], block["k_max"]
    uncertain, random = block["curves"]["uncertain"], block["curves"]["random"]
    start = Estimate.of(uncertain[0]["macro_f1"])
    verb, qualifier = _change(lift["uncertain"])
    what = "most uncertain characteristic" if k == 1 else f"{k} most uncertain characteristics"
    first = (f"{model}: correcting the {what} {verb} diagnosis macro F1 from "
             f"{f'{start.mean:.3f}' if start else '–'} to {_estimate(uncertain[k]['macro_f1'])} "
             f"({_signed(lift['uncertain'])}, paired{qualifier}); {k} in a random order: "
             f"{_estimate(random[k]['macro_f1'])}, most uncertain first − random "
             f"{_signed(lift['uncertain_minus_random'])}; "
             f"correcting all {k_max}: F1({k_max}) − F1(0) = {_signed(block['gain']['macro_f1'])}.")
    reliance = block["reliance"]
    second = (f"{model}, reliance on its characteristics: with them replaced by a constant its F1 drops by "
              f"{_signed(reliance['constant']['drop'])}; shuffled across the test images, by "
              f"{_signed(reliance['shuffled']['drop'])}.")
    return [first, second]


def reliance_frame(summary: dict[str, Any]) -> pd.DataFrame:
    """One row per measured model: F1 as is, with its characteristics replaced by a constant and shuffled,
    and each drop."""
    rows = []
    for model, block in summary["interventions"]["models"].items():
        reliance = block["reliance"]
        rows.append({"model": model, "characteristics corrected (K)": block["k_max"],
                     "images (patients)": f"{block['images']} ({block['patients']})",
                     "macro F1 as is": _estimate(reliance["plain"]["macro_f1"]),
                     "constant: F1": _estimate(reliance["constant"]["macro_f1"]),
                     "constant: drop": _signed(reliance["constant"]["drop"]),
                     "shuffled: F1": _estimate(reliance["shuffled"]["macro_f1"]),
                     "shuffled: drop": _signed(reliance["shuffled"]["drop"]),
                     "F1(K) − F1(0)": _signed(block["gain"]["macro_f1"])})
    return pd.DataFrame(rows)


def curve_frame(summary: dict[str, Any], model: str) -> pd.DataFrame:
    """One model's curve: per k, macro F1 and accuracy in each order."""
    curves = summary["interventions"]["models"][model]["curves"]
    return pd.DataFrame([{"k": point["k"], **{f"{order}: {label}": _estimate(points[point["k"]][key])
                                              for order, points in curves.items()
                                              for key, label in (("macro_f1", "macro F1"), ("accuracy", "accuracy"))}}
                         for point in curves["uncertain"]])


def _notes(block: dict[str, Any]) -> str:
    """The models not measured, characteristics without rater labels, predictions differing from the benchmark's."""
    notes = [f"Not measured: {model} ({why})." for model, why in block["skipped"].items()]
    for model, entry in block["models"].items():
        if entry["not_correctable"]:
            notes.append(f"{model}: {', '.join(entry['not_correctable'])} are not DermXDB's: no rater labels, never "
                         "corrected (kept as the model gives them).")
        if entry["benchmark_differ"]:
            notes.append(f"{model}: on {entry['benchmark_differ']} test image(s) the uncorrected diagnosis here "
                         "differs from the benchmark's (float noise on a near tie), so F1(0) may differ from the "
                         "headline's.")
    return "".join(f"<p class='note'>{html.escape(n)}</p>" for n in notes)


def intervention_section(summary: dict[str, Any], table: Any) -> str:
    """The section (module docstring); ``table`` renders a data frame as HTML. Empty without the key."""
    block = summary.get("interventions")
    if not block:
        return ""
    parts = [f"<h2>{html.escape(TITLE)}</h2>",
             f"<p class='note'>{html.escape(INTRO.format(draws=block['draws']))}</p>"]
    if block["models"]:
        data = figures.intervention_curves(summary)
        parts += [f'<img alt="intervention curves" src="data:image/png;base64,{base64.b64encode(data).decode()}">',
                  "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for model in block["models"]
                                   for s in model_sentences(summary, model)) + "</ul>",
                  table(reliance_frame(summary))]
        parts += [f"<details><summary>{html.escape(model)}: the curve as a table</summary>"
                  f"{table(curve_frame(summary, model))}</details>" for model in block["models"]]
    parts.append(_notes(block))
    return "".join(parts)
