"""Report figures, each rendered to PNG bytes (matplotlib, Agg backend) from a benchmark summary: the
charts. The map panels of the examples and drill-downs are :mod:`dermx.report.panels`."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from dermx import vocab
from dermx.plotting import pyplot
from dermx.report.verdict import group_words, grouped_by

plt = pyplot()

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


def _number(value: Any) -> float:
    """An estimate's mean, or a plain number; NaN where undefined (``None``, missing)."""
    if isinstance(value, dict):
        return _mean(value)
    return float(value) if isinstance(value, int | float) else math.nan


def _grouped_bars(ax: Any, series: dict[str, list[Any]]) -> None:
    """One bar per (group, series) side by side; each value an estimate (:mod:`dermx.evaluate.stats`: its
    95 % CI drawn as an error bar) or a number. An undefined value leaves a gap marked "n/a", never a bar of
    height 0."""
    n_groups = max((len(v) for v in series.values()), default=0)
    x = np.arange(n_groups)
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        where = x + (i - (len(series) - 1) / 2) * width
        heights = np.array([_number(v) for v in values])
        low = np.array([v["low"] if isinstance(v, dict) and v.get("low") is not None else np.nan for v in values])
        high = np.array([v["high"] if isinstance(v, dict) and v.get("high") is not None else np.nan for v in values])
        errors = np.vstack([heights - low, high - heights])
        has_ci = np.isfinite(errors).all(axis=0)
        ax.bar(where, np.nan_to_num(heights), width, label=label)
        if has_ci.any():
            ax.errorbar(where[has_ci], heights[has_ci], yerr=errors[:, has_ci], fmt="none", ecolor="black",
                        elinewidth=0.7, capsize=1.5)
        for position in where[~np.isfinite(heights)]:
            ax.text(position, 0.02, "n/a", rotation=90, ha="center", va="bottom", fontsize=6, color="grey")


def _legend_above(fig: Figure, ax: Any, title: str | None = None, ncol: int = 4) -> None:
    """The legend of ``ax``'s series above the panels, off the data."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, ncol=max(1, min(ncol, len(labels))), loc="outside upper center",
               frameon=False, title=title, title_fontsize=8)


def characteristic_bars(summary: dict[str, Any]) -> bytes:
    """Per characteristic: fuzzy sensitivity, specificity and Dice of each model's characteristic maps
    (headline selection) and of the raters scored as the first model (each against the others, on its
    pairs), one panel per score; error bars are the 95 % CIs over patients, the tick labels give the
    pairs scored (of the first model)."""
    selection = summary["config"]["selection"]
    sources: dict[str, dict[str, Any]] = {}
    pairs: dict[str, int] = {}
    for model, kinds in summary["localization"][selection].items():
        per = kinds.get("characteristic", kinds.get("diagnosis", {})).get("per_characteristic", {})
        label = model if "characteristic" in kinds else f"{model} (diagnosis map)"
        sources[label] = per
        for c, v in per.items():
            pairs.setdefault(c, v.get("pairs", 0))
    first = next(iter(summary["models"]))
    per = summary.get("ceiling", {}).get(first, {}).get("characteristic", {}).get("per_characteristic", {})
    if per:
        sources["raters (leave-one-out)"] = per
    names = [c for c in vocab.CHARACTERISTICS if any(c in per for per in sources.values())]
    fig, axes = plt.subplots(len(_SCORES), 1, figsize=(max(7.0, 0.55 * len(names) + 3), 8.4), sharex=True,
                             layout="constrained")
    for ax, score in zip(axes, _SCORES, strict=True):
        _grouped_bars(ax, {label: [per.get(c, {}).get(score) for c in names] for label, per in sources.items()})
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(_SCORE_LABELS[score], fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    _legend_above(fig, axes[0], f"pairs: {selection} characteristics; bars: 95 % CI over patients")
    axes[-1].set_xticks(np.arange(len(names)), [f"{c} ({pairs.get(c, 0)})" for c in names], rotation=40,
                        ha="right", fontsize=8)
    axes[-1].set_xlabel(f"characteristic (pairs of {first})", fontsize=8)
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
    """Per-class diagnosis F1 of every model, over the classes of any model (DermXDB's first, then a model's
    own); a class a model does not predict is marked n/a. Tick labels give the test images per class."""
    models = list(summary["diagnosis"])
    named = {c for m in models for c in summary["diagnosis"][m]["per_class_f1"]}
    classes = [*(d for d in vocab.DIAGNOSES if d in named), *sorted(named - set(vocab.DIAGNOSES))]
    counts = _class_counts(summary, classes)
    fig, ax = plt.subplots(figsize=(max(7.0, 0.9 * len(classes) + 2), 3.8), layout="constrained")
    _grouped_bars(ax, {m: [summary["diagnosis"][m]["per_class_f1"].get(c) for c in classes] for m in models})
    ax.set_xticks(np.arange(len(classes)), [f"{c} ({counts[c]})" if c in counts else c for c in classes],
                  rotation=25, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1 (one-vs-rest)")
    ax.grid(axis="y", alpha=0.3)
    _legend_above(fig, ax, "test images per class in brackets")
    return png(fig)


def _class_counts(summary: dict[str, Any], classes: list[str]) -> dict[str, int]:
    """Reference images per class of the first model's confusion matrix (its rows)."""
    block = next(iter(summary["diagnosis"].values()))
    rows = np.asarray(block.get("confusion", []))
    return {label: int(rows[i].sum()) for i, label in enumerate(block.get("labels", [])) if label in classes
            and i < len(rows)}


def reliability(summary: dict[str, Any]) -> bytes:
    """Reliability diagram: accuracy against mean confidence per confidence bin, with the ECE."""
    fig, ax = plt.subplots(figsize=(4.6, 4.6), layout="constrained")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
    for model, block in summary["diagnosis"].items():
        bins = block["reliability"]["bins"]
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o",
                label=f"{model} (ECE {block['reliability']['ece']:.2f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (max softmax probability)")
    ax.set_ylabel("accuracy")
    _legend_above(fig, ax, ncol=2)
    return png(fig)


def shortcut(summary: dict[str, Any]) -> bytes:
    """Share of the diagnosis map's energy on the watermark (watermarked images) and on the lesions,
    per class and model, with the areas (what a uniform map would score) as markers."""
    block = summary["shortcut"]
    models = list(block["models"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True, layout="constrained")
    x = np.arange(len(vocab.DIAGNOSES))
    for ax, key, area, title in ((axes[0], "watermark", "area_watermark", "energy on the watermark"),
                                 (axes[1], "lesions", "area_lesions", "energy on the lesions")):
        _grouped_bars(ax, {model: [block["models"][model][d][key] for d in vocab.DIAGNOSES] for model in models})
        first = block["models"][models[0]]
        ax.scatter(x, [first[d][area] for d in vocab.DIAGNOSES], marker="_", s=300, color="black",
                   label="area share (uniform map)", zorder=3)
        ax.set_xticks(x, [f"{d}{' *' if d == block['class'] else ''} ({first[d]['n']})" for d in vocab.DIAGNOSES],
                      rotation=25, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("share of the map's heat\ninside the region")
    fig.legend(*axes[1].get_legend_handles_labels(), fontsize=8, ncol=3, loc="outside upper center", frameon=False,
               title=f"watermark drawn on class {block['class']} (*); test images per class in brackets; bars: 95 % "
                     "CI over patients", title_fontsize=8)
    return png(fig)


def reliability_per_group(summary: dict[str, Any], model: str) -> bytes:
    """One model's reliability diagrams, one panel per group (``all`` first, then each skin tone, or each
    value of the run's own attribute):
    accuracy against mean confidence per confidence bin (``summary["calibration"]``), of the model's own
    probabilities and, when it carries a calibration, of the calibrated ones; a marker's area follows the
    images in its bin; the panel's title gives the images and each ECE."""
    block = summary["calibration"][model]
    states = {"uncalibrated": block["uncalibrated"], "calibrated": block.get("calibrated")}
    groups = list(block["uncalibrated"]["reliability"])
    fig, axes = plt.subplots(1, len(groups), figsize=(2.6 * len(groups) + 0.6, 3.1), sharey=True,
                             layout="constrained", squeeze=False)
    for ax, group in zip(axes[0], groups, strict=True):
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
        eces = []
        for (state, entry), colour in zip(states.items(), ("tab:red", "tab:blue"), strict=True):
            if not entry:
                continue
            bins = entry["reliability"][group]
            ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], color=colour, linewidth=1,
                    label=state)
            ax.scatter([b["confidence"] for b in bins], [b["accuracy"] for b in bins], color=colour,
                       s=[8 + 2 * b["n"] for b in bins], zorder=3)
            when = "before" if state == "uncalibrated" else "after"
            eces.append(f"{when} {_mean(entry['groups'][group]['ece']):.2f}")
        n = block["uncalibrated"]["groups"][group]["ece"]["n"]
        ax.set_title(f"{group} ({n} images)\nECE " + ", ".join(eces), fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence", fontsize=8)
    axes[0][0].set_ylabel("accuracy", fontsize=8)
    attribute, _ = group_words(grouped_by(summary))
    _legend_above(fig, axes[0][0], f"{model}: reliability per {attribute} ({block['bins']} equal-width bins; "
                                   "marker area: images in the bin)", ncol=2)
    return png(fig)


def intervention_curves(summary: dict[str, Any]) -> bytes:
    """Per measured model (``summary["interventions"]``), one panel (three to a row): diagnosis macro F1 against
    the number k of characteristics corrected to the raters' majority, most uncertain first and in random
    orders, each with its 95 % CI over patients as a band; dotted lines: F1 with the characteristics replaced
    by a constant and shuffled across images (reliance). The shared F1 axis starts at the tenth below the
    lowest value shown."""
    block = summary["interventions"]
    models = list(block["models"])
    shown = [_number(v) for entry in block["models"].values()
             for v in [*(p["macro_f1"].get("low") for points in entry["curves"].values() for p in points),
                       *(entry["reliance"][name]["macro_f1"] for name in ("constant", "shuffled"))]]
    bottom = max(0.0, math.floor(10 * (np.nanmin(shown) - 0.02)) / 10) if np.isfinite(shown).any() else 0.0
    columns = min(3, len(models))
    rows = math.ceil(len(models) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns + 0.6, 3.3 * rows + 0.5), sharey=True,
                             layout="constrained", squeeze=False)
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    styles = {"uncertain": ("tab:red", "most uncertain first"),
              "random": ("tab:blue", f"random ({block['draws']} draws)")}
    lines = {"constant": ("tab:grey", "characteristics replaced by a constant"),
             "shuffled": ("tab:brown", "characteristics shuffled across images")}
    for ax, model in zip(axes.flat, models, strict=False):
        entry = block["models"][model]
        for order, points in entry["curves"].items():
            colour, label = styles[order]
            k = [p["k"] for p in points]
            f1 = np.array([_number(p["macro_f1"]) for p in points])
            low = np.array([_number(p["macro_f1"].get("low")) for p in points])
            high = np.array([_number(p["macro_f1"].get("high")) for p in points])
            ax.plot(k, f1, color=colour, marker="o", markersize=3, linewidth=1.2, label=label)
            ax.fill_between(k, low, high, color=colour, alpha=0.15, linewidth=0)
        for name, (colour, label) in lines.items():
            ax.axhline(_number(entry["reliance"][name]["macro_f1"]), color=colour, linestyle=":", linewidth=1.2,
                       label=label)
        ax.set_xlim(0, entry["k_max"])
        ax.set_ylim(bottom, 1.02)
        ax.set_xlabel("characteristics corrected (k)", fontsize=8)
        ax.set_title(f"{model} ({entry['images']} images, {entry['patients']} patients)", fontsize=9)
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel("diagnosis macro F1")
    _legend_above(fig, axes[0][0], "corrected to the raters' majority by the model's rule; bands: 95 % CI over "
                                   "patients", ncol=2)
    return png(fig)
