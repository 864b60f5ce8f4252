"""The leaderboard section of the HTML report, from ``RUN/leaderboard.json`` and
``RUN/leaderboard_examples.npz`` (written by ``dermx evaluate --methods ...``).

:func:`leaderboard_section` returns an HTML fragment (empty when the run has no leaderboard): the
table of (model, method) rows with each metric's 95 % CI and direction (a metric undefined on every
image of a row says why in its cell), the cells left out and why, a scatter of agreement against
faithfulness, the cascading-randomisation curves and one image under every method (HTML panels).
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

import numpy as np

from dermx.report.figures import png
from dermx.runs.layout import LEADERBOARD_JSON
from dermx.runs.leaderboard import read_leaderboard, read_leaderboard_examples

__all__ = ["leaderboard_section"]

#: Column groups of the table, in order.
GROUPS: dict[str, tuple[str, ...]] = {
    "agreement": ("dice", "sensitivity", "specificity", "pointing"),
    "faithfulness": ("deletion_auc", "insertion_auc", "deletion_auc_mean", "insertion_auc_mean", "road_morf",
                     "road_lerf", "faithfulness_corr"),
    "sanity": ("mprt_spearman", "mprt_ssim", "random_logit"),
    "robustness": ("max_sensitivity", "avg_sensitivity"),
}

#: The columns of the main table (the page's width); the others are in a folded table below it.
MAIN: tuple[str, ...] = ("dice", "pointing", "deletion_auc", "insertion_auc", "road_morf", "faithfulness_corr",
                         "mprt_spearman", "max_sensitivity")

#: Map panels per row of the example grid after the image (seven panels and the colour bar fill the page).
METHODS_PER_ROW = 6

_NOT_APPLICABLE = (
    "Where a metric says nothing about a method, the number is still computed and the reason is given "
    "here: <b>eigencam</b> gives every target the same map, so its random-logit SSIM is 1 by construction "
    "and its agreement does not depend on the class. Methods that give the same maps on a model share one "
    "row, named together.")


def _fmt(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if value is None or not math.isfinite(value):
        return "–"  # not measured (a run from before the column) or undefined (:func:`_cell` names why)
    low, high = row.get(f"{column}_low"), row.get(f"{column}_high")
    ci = f"<br><small>[{low:.3f}, {high:.3f}]</small>" if low is not None and high is not None \
        and math.isfinite(low) and math.isfinite(high) else ""
    sd = row.get(f"{column}_fold_sd")
    fold = f" ± {sd:.3f}" if sd else ""
    return f"{value:.3f}{fold}{ci}"


def _cell(row: dict[str, Any], column: str, undefined: dict[tuple[str, str, str], str]) -> str:
    why = undefined.get((str(row["model"]), str(row["method"]), column))
    if why is None:
        return f"<td>{_fmt(row, column)}</td>"
    return f"<td class='na' title='{html.escape(why, quote=True)}'>n/a: {html.escape(why)}</td>"


def _method(row: dict[str, Any]) -> str:
    """The row's method, and the methods that give the same maps on its model."""
    return " = ".join([str(row["method"]), *(m for m in str(row.get("same_maps") or "").split(", ") if m)])


def _table(rows: list[dict[str, Any]], directions: dict[str, str], undefined: dict[tuple[str, str, str], str],
           deviations: dict[str, str], shown: tuple[str, ...]) -> str:
    """The leaderboard as HTML, the columns of ``shown``; a metric undefined on every image of its row shows
    why in its cell, and a column whose setting differs from Quantus' (or its paper's) is marked with the
    number of its note."""
    columns = [c for group in GROUPS.values() for c in group if c in shown and any(c in r for r in rows)]
    texts = list(dict.fromkeys(deviations[c] for c in columns if c in deviations))
    notes = {c: texts.index(deviations[c]) + 1 for c in columns if c in deviations}
    groups = "".join(f"<th colspan='{sum(c in columns for c in cols)}'>{g}</th>" for g, cols in GROUPS.items()
                     if any(c in columns for c in cols))
    head = "".join(f"<th>{html.escape(c).replace('_', '_<wbr>')} {'↑' if directions.get(c) == 'higher' else '↓'}"
                   + (f"<sup title='{html.escape(deviations[c], quote=True)}'>{notes[c]}</sup>" if c in notes else "")
                   + "</th>" for c in columns)
    body = "".join("<tr><td>" + html.escape(str(r["model"])) + "</td><td>" + html.escape(_method(r)) + "</td>"
                   + "".join(_cell(r, c, undefined) for c in columns) + "</tr>" for r in rows)
    return (f"<div class='wide'><table><tr><th rowspan='2'>model</th><th rowspan='2'>method</th>{groups}</tr>"
            f"<tr>{head}</tr>{body}</table></div>")


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _scatter(rows: list[dict[str, Any]]) -> bytes:
    """Agreement (Dice with its CI) against faithfulness (insertion − deletion AUC): a colour per method, a
    marker per model; methods whose points coincide (CAM = Grad-CAM on DermX networks) are named together."""
    from matplotlib.lines import Line2D

    from dermx.plotting import pyplot

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7.6, 4.6))
    markers = "osD^v<>"
    methods = list(dict.fromkeys(r["method"] for r in rows))
    colours = {m: plt.get_cmap("tab10")(k % 10) for k, m in enumerate(methods)}
    models = list(dict.fromkeys(r["model"] for r in rows))
    drawn: dict[tuple[str, float, float], list[str]] = {}
    for k, model in enumerate(models):
        for r in rows:
            if r["model"] != model or any(r.get(c) is None for c in ("dice", "insertion_auc", "deletion_auc")):
                continue
            x, y = r["dice"], r["insertion_auc"] - r["deletion_auc"]
            ax.errorbar([x], [y], xerr=[[x - r["dice_low"]], [r["dice_high"] - x]], fmt=markers[k % len(markers)],
                        color=colours[r["method"]], capsize=2, alpha=0.85)
            drawn.setdefault((model, round(x, 3), round(y, 3)), []).append(r["method"])
    ax.set_xlabel("agreement with the experts: Dice (95 % CI) →")
    ax.set_ylabel("faithfulness: insertion AUC − deletion AUC →")
    ax.grid(alpha=0.3)
    same = sorted({" = ".join(names) for names in drawn.values() if len(names) > 1})
    handles = [Line2D([], [], color=colours[m], marker="o", ls="", label=m) for m in methods]
    handles += [Line2D([], [], color="#444", marker=markers[k % len(markers)], ls="", label=model)
                for k, model in enumerate(models)]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if same:
        ax.set_title("same point: " + "; ".join(same), fontsize=7, loc="left")
    return png(fig)


def _mprt(curves: dict[str, dict[str, list[dict[str, Any]]]]) -> bytes:
    from dermx.plotting import pyplot

    plt = pyplot()

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.4), squeeze=False)
    for ax, (model, methods) in zip(axes[0], curves.items(), strict=True):
        for method, points in methods.items():
            ax.plot([0] + [p["step"] for p in points], [1.0] + [p["spearman"] for p in points], marker="o",
                    label=method)
        ax.set_title(f"{model}: cascading randomisation", fontsize=9)
        ax.set_xlabel("layers randomised (head → stem)")
        ax.set_ylabel("Spearman ρ with the trained maps")
        ax.axhline(0, color="#999", lw=0.8)
    axes[0][0].legend(fontsize=7)
    return png(fig)


def _examples(examples: dict[str, np.ndarray]) -> str:
    """One image per model under every method, as the report's other grids (:mod:`dermx.report.panels`:
    the shared overlay, one colour bar per row); ``""`` without examples."""
    from dermx.report.panels import Panel, grid_html, panel

    models = [k.split(":", 1)[1] for k in examples if k.startswith("image:")]
    if not models:
        return ""
    methods = list(dict.fromkeys(k.rsplit(":", 1)[1] for k in examples if k.startswith("map:")))
    rows = []
    for model in models:
        image = np.round(np.clip(examples[f"image:{model}"], 0, 1) * 255).astype(np.uint8)
        cells = []
        for method in methods:
            values = examples.get(f"map:{model}:{method}")
            cells.append(Panel(panel(image, values.astype(np.float32)), method) if values is not None
                         else Panel(None, f"{method}: not computed"))
        for start in range(0, len(cells), METHODS_PER_ROW):  # the page's width; the image opens every row
            rows.append([Panel(panel(image), model), *cells[start:start + METHODS_PER_ROW]])
    return grid_html(rows, "one image under every method")


def leaderboard_section(run_dir: str | Path) -> str:
    """HTML fragment of the run's leaderboard; ``""`` when the run has none."""
    run_dir = Path(run_dir)
    if not (run_dir / LEADERBOARD_JSON).is_file():
        return ""
    data = read_leaderboard(run_dir)
    rows, config = data.get("rows", []), data.get("config", {})
    directions = data.get("directions", {})
    parts = ["<h2>Which explanation to trust: method × model leaderboard</h2>",
             f"<p class='note'>Protocol <b>{html.escape(str(config.get('protocol')))}</b>. Agreement on every "
             f"test image (Score-CAM: the first {config.get('score_images') or 'all'}, see each row's "
             f"agreement_images); faithfulness (predicted diagnosis's map, {config.get('steps')} deletion/insertion "
             "steps, "
             f"ROAD at {config.get('road_percentages')} %), sanity ({config.get('mprt_steps')} cascade positions, "
             f"every target's map) and robustness ({config.get('sensitivity_samples')} noise draws of radius "
             f"{config.get('sensitivity_radius')}) on the first {config.get('n_images')} test images. Mean of "
             "image means [bootstrap 95 % CI over patients]; ↑ higher is better, ↓ lower is better. A faithful "
             "method has a low deletion AUC, a high insertion AUC and a low similarity after randomisation.</p>"]
    undefined = {(e["model"], e["method"], e["metric"]): e["reason"] for e in data.get("undefined", [])}
    deviations = data.get("deviations", {})
    trust = [entry["sentence"] for entry in data.get("trust", {}).values()]
    if trust:
        parts.append("<div class='verdict'><b>Which method to trust</b><ul>"
                     + "".join(f"<li>{html.escape(s)}</li>" for s in trust) + "</ul><p class='note'>Per model and "
                     "criterion, the best method by mean and every method whose paired difference from it (per-image "
                     "values, patients resampled, Bonferroni over the comparisons) includes 0; a method to trust is "
                     "among the best on agreement, faithfulness and sanity.</p></div>")
    if rows:
        parts.append(_table(rows, directions, undefined, deviations, MAIN))
        rest = tuple(c for group in GROUPS.values() for c in group if c not in MAIN)
        parts.append("<details><summary>The other columns (sensitivity, specificity, mean-colour baselines, ROAD "
                     "LeRF, MPRT SSIM, random logit, average sensitivity)</summary>"
                     + _table(rows, directions, undefined, deviations, rest) + "</details>")
        shown = [c for group in GROUPS.values() for c in group if any(c in r for r in rows) and c in deviations]
        texts: dict[str, list[str]] = {}
        for column in shown:
            texts.setdefault(deviations[column], []).append(column)
        if texts:
            settings = "".join(f"<li><b>{html.escape(', '.join(columns))}</b>: {html.escape(text)}</li>"
                               for text, columns in texts.items())
            parts.append(f"<p class='note'>Where a column's setting differs from Quantus' default (or its paper's), "
                         f"the number beside its name refers to:</p><ol class='note'>{settings}</ol>")
        parts.append(_img(_scatter(rows), "agreement against faithfulness"))
    if data.get("mprt_curves"):
        parts.append(_img(_mprt(data["mprt_curves"]), "cascading randomisation"))
    grid = _examples(read_leaderboard_examples(run_dir))
    if grid:
        parts += ["<h3>One image under every method (predicted diagnosis)</h3>", grid]
    items = [f"<li>{html.escape(e['model'])} / {html.escape(e['method'])}: {html.escape(e['reason'])}</li>"
             for e in data.get("excluded", [])]
    items += [f"<li>{html.escape(e['model'])} / {html.escape(e['method'])}: {html.escape(e['metric'])} "
              f"{html.escape(e['reason'])}; the row is kept here and in leaderboard.json, and left out of "
              "leaderboard.csv, whose every cell is a number</li>" for e in data.get("undefined", [])]
    items += [f"<li>{html.escape(n)}</li>" for n in data.get("notes", [])]
    if items:
        parts.append(f"<p class='note'>Left out or to read with care:</p><ul class='note'>{''.join(items)}</ul>")
    parts.append(f"<p class='note'>{_NOT_APPLICABLE}</p>")
    return "".join(parts)
