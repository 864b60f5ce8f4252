"""Report figures, each rendered to PNG bytes (matplotlib, Agg backend) from a benchmark summary.

Maps (the experts' and the models') are drawn as everywhere in dermx (:mod:`dermx.explain.overlay`:
``viridis`` on a fixed 0–1 scale, each pixel as opaque as its value, a colour bar per row); the watermark
box (synthetic data) in a dashed cyan outline.
"""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from dermx import vocab
from dermx.explain.overlay import blend, colorbar

_SCORES = ("sensitivity", "specificity", "dice")
_SCORE_LABELS = {"sensitivity": "sensitivity\n(outlined area covered)",
                 "specificity": "specificity\n(unoutlined area left cold)",
                 "dice": "Dice\n(overlap, 0–1)"}


def png(fig: Figure, dpi: int = 110, tight: bool = True) -> bytes:
    """The figure as PNG bytes (cropped to its content when ``tight``); the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    plt.close(fig)
    return buffer.getvalue()


def _mean(value: Any) -> float:
    return float(value["mean"]) if isinstance(value, dict) and value.get("mean") is not None else math.nan


def characteristic_bars(summary: dict[str, Any]) -> bytes:
    """Per characteristic: fuzzy sensitivity, specificity and Dice of each model's characteristic maps
    (headline selection) and of the raters (leave-one-rater-out), one panel per score."""
    selection = summary["config"]["selection"]
    sources: dict[str, dict[str, Any]] = {}
    for model, kinds in summary["localization"][selection].items():
        per = kinds.get("characteristic", kinds.get("diagnosis", {})).get("per_characteristic", {})
        label = model if "characteristic" in kinds else f"{model} (diagnosis map)"
        sources[label] = {c: {s: _mean(v[s]) for s in _SCORES} for c, v in per.items()}
    if summary.get("raters"):
        per = summary["raters"]["leave_one_out"]["per_characteristic"]
        sources["raters (leave-one-out)"] = {c: {s: v[s] for s in _SCORES} for c, v in per.items()}
    names = [c for c in vocab.CHARACTERISTICS if any(c in per for per in sources.values())]
    fig, axes = plt.subplots(len(_SCORES), 1, figsize=(max(7.0, 0.55 * len(names) + 3), 8.0), sharex=True,
                             layout="constrained")
    x = np.arange(len(names))
    width = 0.8 / max(1, len(sources))
    for ax, score in zip(axes, _SCORES, strict=True):
        for i, (label, per) in enumerate(sources.items()):
            values = [per.get(c, {}).get(score, math.nan) for c in names]
            ax.bar(x + (i - (len(sources) - 1) / 2) * width, values, width, label=label)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(_SCORE_LABELS[score], fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=8, ncol=min(4, len(sources)), loc="outside upper center",
               title=f"pairs: {selection} characteristics", title_fontsize=8, frameon=False)
    axes[-1].set_xticks(x, names, rotation=40, ha="right", fontsize=8)
    return png(fig)


def confusion(summary: dict[str, Any], model: str) -> bytes:
    """Confusion matrix of a model's diagnoses (rows: reference, columns: predicted)."""
    block = summary["diagnosis"][model]
    matrix = np.asarray(block["confusion"])
    fig, ax = plt.subplots(figsize=(4.9, 4.2), layout="constrained")
    shown = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(shown, ax=ax, shrink=0.8).set_label("images", fontsize=8)
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=8, color="white" if v > matrix.max() / 2 else "black")
    ticks = np.arange(len(block["labels"]))
    ax.set_xticks(ticks, block["labels"], rotation=40, ha="right", fontsize=7)
    ax.set_yticks(ticks, block["labels"], fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(model, fontsize=9)
    return png(fig)


def per_class_f1(summary: dict[str, Any]) -> bytes:
    """Per-class diagnosis F1 of every model."""
    models = list(summary["diagnosis"])
    x = np.arange(len(vocab.DIAGNOSES))
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for i, model in enumerate(models):
        values = [summary["diagnosis"][model]["per_class_f1"][d] for d in vocab.DIAGNOSES]
        ax.bar(x + (i - (len(models) - 1) / 2) * width, np.nan_to_num(values, nan=0.0), width, label=model)
    ax.set_xticks(x, vocab.DIAGNOSES, rotation=25, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1 (one-vs-rest)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return png(fig)


def reliability(summary: dict[str, Any]) -> bytes:
    """Reliability diagram: accuracy against mean confidence per confidence bin, with the ECE."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
    for model, block in summary["diagnosis"].items():
        bins = block["reliability"]["bins"]
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o",
                label=f"{model} (ECE {block['reliability']['ece']:.2f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (max softmax probability)")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    return png(fig)


def shortcut(summary: dict[str, Any]) -> bytes:
    """Share of the diagnosis map's energy on the watermark (watermarked images) and on the lesions,
    per class and model, with the areas (what a uniform map would score) as markers."""
    block = summary["shortcut"]
    models = list(block["models"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True, layout="constrained")
    x = np.arange(len(vocab.DIAGNOSES))
    width = 0.8 / len(models)
    for ax, key, area, title in ((axes[0], "watermark", "area_watermark", "energy on the watermark"),
                                 (axes[1], "lesions", "area_lesions", "energy on the lesions")):
        for i, model in enumerate(models):
            per = block["models"][model]
            values = [_mean(per[d][key]) for d in vocab.DIAGNOSES]
            ax.bar(x + (i - (len(models) - 1) / 2) * width, np.nan_to_num(values), width, label=model)
        first = block["models"][models[0]]
        ax.scatter(x, [first[d][area] for d in vocab.DIAGNOSES], marker="_", s=300, color="black",
                   label="area share (uniform map)", zorder=3)
        ax.set_xticks(x, [d + (" *" if d == block["class"] else "") for d in vocab.DIAGNOSES], rotation=25,
                      ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("share of the map's heat\ninside the region")
    fig.legend(*axes[1].get_legend_handles_labels(), fontsize=8, ncol=3, loc="outside upper center", frameon=False,
               title=f"watermark drawn on class {block['class']} (*)", title_fontsize=8)
    return png(fig)


def _map_panel(ax, image: np.ndarray, values: np.ndarray | None, title: str,
               watermark: np.ndarray | None = None) -> None:
    """One panel: ``values`` over ``image`` as :func:`dermx.explain.overlay.blend` draws it (the image
    alone when ``values`` is ``None``), the watermark outlined in dashed cyan."""
    ax.set_axis_off()
    picture = Image.fromarray(image)
    ax.imshow(np.asarray(picture if values is None else blend(picture, values.astype(np.float32))))
    if watermark is not None and watermark.any():
        ax.contour(watermark, levels=[0.5], colors="cyan", linewidths=0.8, linestyles="--")
    ax.set_title(title, fontsize=7)


def _panel_grid(n_rows: int, n_cols: int, cell: float = 1.55, title: float = 0.42) -> tuple[Figure, np.ndarray]:
    """A grid of square map panels of ``cell`` inches with ``title`` inches above each for its two-line
    title, and one colour bar (the maps' shared 0–1 scale) along the right edge; laid out by hand, since
    constrained layout costs seconds per figure with dozens of panels."""
    bar = 1.0
    width, height = n_cols * (cell + 0.08) + bar, n_rows * (cell + title) + 0.1
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(left=0.04 / width, right=1 - bar / width, bottom=0.05 / height, top=1 - title / height,
                        wspace=0.08 / cell, hspace=title / cell)
    bar_height = min(height - title - 0.2, 2 * cell + title)  # beside the first two rows at most
    cax = fig.add_axes((1 - 0.8 * bar / width, 1 - (title + bar_height) / height, 0.12 / width, bar_height / height))
    colorbar(fig, cax=cax)
    return fig, axes


def top_characteristic(examples: dict[str, np.ndarray], i: int) -> int | None:
    """Index of the characteristic the experts outlined most (largest fused area) in example ``i``."""
    present = np.flatnonzero(examples["present"][i])
    if not len(present):
        return None
    areas = examples["fused"][i][present].astype(np.float32).sum(axis=(1, 2))
    return int(present[int(areas.argmax())])


def _dx_title(examples: dict[str, np.ndarray], model: str, i: int) -> str:
    predicted, reference = str(examples[f"predicted:{model}"][i]), str(examples["reference"][i])
    p = float(examples[f"dx_prob:{model}"][i].max())
    return f"{model}: {'✓' if predicted == reference else '✗'} {predicted}\np = {p:.2f}"


def _char_title(examples: dict[str, np.ndarray], model: str, i: int, c: int) -> str:
    p = float(examples[f"char_prob:{model}"][i][c])
    return f"{model}\n" + ("not modelled" if math.isnan(p) else f"p = {p:.2f}")


def example_grid(examples: dict[str, np.ndarray], models: list[str], rows: list[int]) -> bytes:
    """One row per example: the image (stem, reference, why it was chosen), the experts' union, each
    model's diagnosis map (✓/✗, probability), then the characteristic the experts outlined most: their
    fused map of it beside each model's map of it (probability). Every row has its colour bar."""
    n_cols = 3 + 2 * len(models)
    fig, axes = _panel_grid(len(rows), n_cols)
    for r, i in enumerate(rows):
        image, mark = examples["image"][i], examples["watermark"][i]
        panels = axes[r]
        _map_panel(panels[0], image, None, f"{examples['stems'][i]}\n{examples['reasons'][i]}", mark)
        _map_panel(panels[1], image, examples["union"][i], "experts: union", mark)
        for m, model in enumerate(models):
            _map_panel(panels[2 + m], image, examples[f"map:{model}"][i], _dx_title(examples, model, i), mark)
        c = top_characteristic(examples, i)
        first = 2 + len(models)
        if c is None:
            for ax in panels[first:]:
                ax.set_axis_off()
            panels[first].set_title("no characteristic outlined", fontsize=7)
        else:
            _map_panel(panels[first], image, examples["fused"][i][c], f"experts: {vocab.CHARACTERISTICS[c]}", mark)
            for m, model in enumerate(models):
                _map_panel(panels[first + 1 + m], image, examples[f"chars:{model}"][i][c],
                           _char_title(examples, model, i, c), mark)
    return png(fig, dpi=90, tight=False)


def drilldown(examples: dict[str, np.ndarray], models: list[str], i: int) -> bytes:
    """Every map of example ``i``: a first row with the image, the experts' union and each model's
    diagnosis map; then one row per characteristic the experts outlined or a model found (p ≥ 0.5): the
    experts' fused map beside each model's map, with a colour bar per row."""
    present = set(np.flatnonzero(examples["present"][i]).tolist())
    for model in models:
        present |= set(np.flatnonzero(np.nan_to_num(examples[f"char_prob:{model}"][i]) >= 0.5).tolist())
    characteristics = sorted(present)
    n_cols = 2 + len(models)
    n_rows = 1 + len(characteristics)
    fig, axes = _panel_grid(n_rows, n_cols)
    image, mark = examples["image"][i], examples["watermark"][i]
    _map_panel(axes[0, 0], image, None, f"{examples['stems'][i]}: {examples['reference'][i]}", mark)
    _map_panel(axes[0, 1], image, examples["union"][i], "experts: union", mark)
    for m, model in enumerate(models):
        _map_panel(axes[0, 2 + m], image, examples[f"map:{model}"][i], _dx_title(examples, model, i), mark)
    for r, c in enumerate(characteristics, start=1):
        outlined = "outlined" if examples["present"][i][c] else "not outlined"
        _map_panel(axes[r, 0], image, None, f"{vocab.CHARACTERISTICS[c]}\n(experts: {outlined})", mark)
        _map_panel(axes[r, 1], image, examples["fused"][i][c], "experts: fused", mark)
        for m, model in enumerate(models):
            _map_panel(axes[r, 2 + m], image, examples[f"chars:{model}"][i][c], _char_title(examples, model, i, c),
                       mark)
    return png(fig, dpi=90, tight=False)
