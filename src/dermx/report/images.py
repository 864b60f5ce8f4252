"""The report's per-image parts: example grids per class, a sortable table of every test image, and a
drill-down section per example image (anchors ``#img-<stem>`` in the one report page; opened through
its anchor, a drill-down is shown alone, as its own page, by a CSS ``:target`` rule).

Examples are chosen by rule in the benchmark (:mod:`dermx.evaluate.benchmark.examples`). The image table is
sorted by clicking a header (a few lines of inline JavaScript; the page stays one offline file).
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

import numpy as np
import pandas as pd

from dermx import vocab
from dermx.report import panels
from dermx.report.verdict import NAMED_VALUES, group_words
from dermx.runs.tables import image_dice

#: Inline script: clicking a header of a ``table.sortable`` sorts its rows by that column (numbers
#: numerically, text alphabetically; a second click reverses).
SORT_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach((th, col) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0], rows = Array.from(body.rows);
  const dir = th.dataset.dir === "asc" ? -1 : 1; th.dataset.dir = dir === 1 ? "asc" : "desc";
  const key = (r) => { const t = r.cells[col].dataset.sort ?? r.cells[col].textContent.trim();
                       const n = parseFloat(t); return isNaN(n) ? t : n; };
  rows.sort((a, b) => { const x = key(a), y = key(b);
    return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y))) * dir; });
  rows.forEach((r) => body.appendChild(r));
}));
"""


def anchor(stem: str) -> str:
    """The drill-down anchor id of an image: ``img-`` and the stem with unsafe characters replaced."""
    return "img-" + re.sub(r"[^A-Za-z0-9_-]+", "_", stem)


def rows_by_class(examples: dict[str, np.ndarray]) -> dict[str, list[int]]:
    """Example indices per reference class, in class order (classes without examples left out)."""
    out: dict[str, list[int]] = {}
    for i, reference in enumerate(examples["reference"]):
        out.setdefault(str(reference), []).append(i)
    return {dx: out[dx] for dx in vocab.DIAGNOSES if dx in out}


def examples_html(examples: dict[str, np.ndarray], models: list[str]) -> str:
    """Per class: the example grid and links to each example's drill-down."""
    parts = ["<h2 id='examples'>Examples</h2><p class='note'>Chosen by rule for every class: a typical correct "
             "diagnosis (median agreement among images all models got right), the most confident wrong one, the "
             "images of best and worst agreement (mean over models of the characteristic-map Dice against the "
             "experts) and, for the shortcut class, watermarked images (watermark outlined in dashed cyan). ✓/✗: "
             "each model's diagnosis against the reference, with its probability. The last columns show the "
             "characteristic the experts outlined most: their fused map beside each model's map of it.</p>"]
    for diagnosis, rows in rows_by_class(examples).items():
        links = " · ".join(f"<a href='#{anchor(str(examples['stems'][i]))}'>{html.escape(str(examples['stems'][i]))}"
                           f"</a> ({html.escape(str(examples['reasons'][i]))})" for i in rows)
        parts += [f"<h3 class='examples-class'>{html.escape(diagnosis)}</h3>",
                  panels.grid_html(panels.example_grid(examples, models, rows), f"examples of {diagnosis}"),
                  f"<p class='note'>Details: {links}</p>"]
    return "".join(parts)


def _cell(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "<td data-sort='-1'>–</td>"
    if isinstance(value, float):
        return f"<td>{value:.{digits}f}</td>"
    return f"<td>{html.escape(str(value))}</td>"


def image_table(images: pd.DataFrame, items: pd.DataFrame, models: list[str], linked: set[str],
                by: str = NAMED_VALUES) -> str:
    """Every test image: reference, skin tone (and its group when the run groups the images by another
    attribute ``by``, a column of ``images``), and per model the diagnosis (✓/✗), its probability and the
    image's mean characteristic-map Dice; stems with a drill-down link to it. Sortable."""
    dice = image_dice(items)
    by_model = {m: rows.set_index("stem") for m, rows in images.groupby("model", sort=False)}
    stems = sorted(images["stem"].unique())
    extra = [by] if by != NAMED_VALUES and by in images else []
    head = ["image", "reference", "skin tone", *(group_words(c)[0] for c in extra),
            *(f"{m}: {what}" for m in models for what in ("diagnosis", "p", "char-map Dice"))]
    body = []
    for stem in stems:
        first = images[images["stem"] == stem].iloc[0]
        name = html.escape(stem)
        cells = [f"<td><a href='#{anchor(stem)}'>{name}</a></td>" if stem in linked else f"<td>{name}</td>",
                 _cell(first["reference"]), _cell(first.get("skin_tone")), *(_cell(first[c]) for c in extra)]
        for model in models:
            row = by_model[model].loc[stem] if stem in by_model.get(model, pd.DataFrame()).index else None
            if row is None:
                cells += [_cell(None)] * 3
                continue
            mark = "✓" if bool(row["correct"]) else "✗"
            cells += [_cell(f"{mark} {row['predicted']}"), _cell(float(row["confidence"])),
                      _cell(float(dice.get((model, stem), math.nan)))]
        body.append(f"<tr>{''.join(cells)}</tr>")
    header = "".join(f"<th title='click to sort'>{html.escape(h)}</th>" for h in head)
    return (f"<h2 id='images'>Images</h2><p class='note'>Every test image; click a header to sort (e.g. by a "
            f"model's Dice to find its worst maps). Linked images have a detail section below.</p>"
            f"<table class='sortable'><thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f"<script>{SORT_SCRIPT}</script>")


def drilldown_html(examples: dict[str, np.ndarray], items: pd.DataFrame | None, models: list[str]) -> str:
    """One section per example image: every rater's outline and every map (:func:`dermx.report.panels.drilldown`),
    the predictions and, per characteristic, the experts' answer and each model's probability and Dice."""
    parts = [f"<h2 id='details'>Image details</h2><p class='note'>One section for each example image above (the "
             f"examples' rule); the pictures are {panels.PANEL} px JPEG panels of the maps at the model's input "
             f"size ({examples['image'].shape[1]}×{examples['image'].shape[2]} px).</p>"]
    for i, stem in enumerate(str(s) for s in examples["stems"]):
        scores = (items[(items["stem"] == stem) & (items["kind"] == "characteristic")].set_index(["model", "target"])
                  if items is not None else None)
        dx = "; ".join(f"{html.escape(m)}: {html.escape(str(examples[f'predicted:{m}'][i]))} "
                       f"(p = {float(examples[f'dx_prob:{m}'][i].max()):.2f})" for m in models)
        head = "<th>characteristic</th><th>experts outlined</th>" + "".join(
            f"<th>{html.escape(m)}: p</th><th>{html.escape(m)}: Dice</th>" for m in models)
        body = []
        for c, name in enumerate(vocab.CHARACTERISTICS):
            outlined = bool(examples["present"][i][c])
            probs = [float(examples[f"char_prob:{m}"][i][c]) for m in models]
            if not outlined and not any(p >= 0.5 for p in probs if not math.isnan(p)):
                continue
            cells = [_cell(name), _cell("yes" if outlined else "no")]
            for m, p in zip(models, probs, strict=True):
                key = (m, name)
                value = float(scores.loc[key, "dice"]) if scores is not None and key in scores.index else None
                cells += [_cell(p, 2), _cell(value)]
            body.append(f"<tr>{''.join(cells)}</tr>")
        parts += [f"<section id='{anchor(stem)}' class='drilldown'><h3>{html.escape(stem)}: "
                  f"{html.escape(str(examples['reference'][i]))}</h3>"
                  f"<p class='note'>Chosen as: {html.escape(str(examples['reasons'][i]))}. Diagnoses: {dx}. "
                  f"Back to the <a href='#images'>image table</a> · <a href='#examples'>examples</a> · "
                  f"<a href='#verdict'>report</a></p><p class='note'>{panels.rater_legend(examples, i)}</p>",
                  panels.grid_html(panels.drilldown(examples, models, i), f"all maps of {stem}"),
                  f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></section>"
                  if body else "</section>"]
    return "".join(parts)
