"""Report figures, each rendered to PNG bytes (matplotlib, Agg backend) from a benchmark summary: the
charts. The map panels of the examples and drill-downs are :mod:`dermx.report.panels`."""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from dermx import vocab

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
    (headline selection) and of the raters scored as the first model (each against the others, on its
    pairs), one panel per score."""
    selection = summary["config"]["selection"]
    sources: dict[str, dict[str, Any]] = {}
    for model, kinds in summary["localization"][selection].items():
        per = kinds.get("characteristic", kinds.get("diagnosis", {})).get("per_characteristic", {})
        label = model if "characteristic" in kinds else f"{model} (diagnosis map)"
        sources[label] = {c: {s: _mean(v[s]) for s in _SCORES} for c, v in per.items()}
    first = next(iter(summary["models"]))
    per = summary.get("ceiling", {}).get(first, {}).get("characteristic", {}).get("per_characteristic", {})
    if per:
        sources["raters (leave-one-out)"] = {c: {s: _mean(v[s]) for s in _SCORES} for c, v in per.items()}
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
