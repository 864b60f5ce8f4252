"""The self-contained HTML report of a benchmark run folder (figures inlined as base64 PNG, no
external CSS or JavaScript), plus its tables as CSV.

Numbers: an estimate with a CI reads ``0.812 [0.701, 0.903]`` (mean of image means, bootstrap 95 % CI
over images); rater numbers read ``0.650 ± 0.102`` (mean ± SD over rater pairs or raters); ``–`` is
undefined or not applicable.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dermx.report import figures
from dermx.report.leaderboard_section import leaderboard_section
from dermx.report.manifest import read_manifest

REPORT = "report.html"
HEADLINE_COLUMNS: dict[str, str] = {
    "source": "source",
    "diagnosis_f1": "diagnosis macro F1",
    "identification_f1": "identification macro F1",
    "char_dice": "characteristic maps: Dice",
    "char_sensitivity": "sensitivity",
    "char_specificity": "specificity",
    "union_dice": "diagnosis map vs union: Dice",
    "pointing": "pointing game",
    "char_dice_drawn": "characteristic maps vs drawn lesions: Dice",
    "pointing_drawn": "pointing game vs drawn lesions",
}
#: Headline columns present only for synthetic data (the generator's known answer).
DRAWN_COLUMNS: tuple[str, ...] = ("char_dice_drawn", "pointing_drawn")
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:1.8em}
table{border-collapse:collapse;margin:8px 0 16px;font-size:0.86em}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}tr.raters td{background:#f4f8ff}tr.baseline td{color:#666}
img{max-width:100%;border:1px solid #eee;margin:6px 0}.note{color:#555;font-size:0.88em}
pre{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:0.8em}
"""


def fmt(value: Any) -> str:
    """One cell: an estimate dict, a number, or ``–``."""
    if value is None:
        return "–"
    if isinstance(value, dict):
        mean = value.get("mean")
        if mean is None or (isinstance(mean, float) and math.isnan(mean)):
            return "–"
        if "low" in value and not math.isnan(value["low"]):
            return f"{mean:.3f} [{value['low']:.3f}, {value['high']:.3f}]"
        if "sd" in value and value["sd"] is not None and not math.isnan(value["sd"]):
            return f"{mean:.3f} ± {value['sd']:.3f}"
        return f"{mean:.3f}"
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3f}"
    return html.escape(str(value))


METHOD_NAMES: dict[str, str] = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "xgradcam": "XGrad-CAM",
                                 "hirescam": "HiRes-CAM", "layercam": "Layer-CAM", "cam": "CAM",
                                 "scorecam": "Score-CAM", "eigencam": "Eigen-CAM"}


def map_grid_note(summary: dict[str, Any]) -> str:
    """What each model's maps are made of, e.g. "Grad-CAM on an 8×8 grid, upsampled to 64 px" ("an"
    before the numbers read with a leading vowel: 8, 11, 18, 80-89)."""
    method = METHOD_NAMES.get(summary["config"]["method"], summary["config"]["method"])
    notes = {}
    for model, info in summary["models"].items():
        grid, size = info.get("map_grid") or [], info.get("input_size") or []
        if len(grid) == 2 and len(size) == 2:
            pixels = f"{size[0]} px" if size[0] == size[1] else f"{size[0]}×{size[1]} px"
            article = "an" if str(grid[0]).startswith("8") or grid[0] in (11, 18) else "a"
            notes.setdefault(f"{method} on {article} {grid[0]}×{grid[1]} grid, upsampled to {pixels}", []).append(model)
    if not notes:
        return f"CAM method {method}"
    if len(notes) == 1:
        return next(iter(notes))
    return "; ".join(f"{', '.join(models)}: {note}" for note, models in notes.items())


def headline_columns(summary: dict[str, Any]) -> dict[str, str]:
    """:data:`HEADLINE_COLUMNS`, without the known-answer ones when no row has them (real data)."""
    drawn = any(key in row for row in summary["headline"] for key in DRAWN_COLUMNS)
    return {k: v for k, v in HEADLINE_COLUMNS.items() if drawn or k not in DRAWN_COLUMNS}


def headline_frame(summary: dict[str, Any]) -> pd.DataFrame:
    """The headline table with formatted cells (columns of :func:`headline_columns`) and a ``type``."""
    rows = [{**{label: fmt(row.get(key)) if key != "source" else row["source"]
                for key, label in headline_columns(summary).items()}, "type": row["type"]}
            for row in summary["headline"]]
    return pd.DataFrame(rows)


def _table(frame: pd.DataFrame, row_class: str | None = None) -> str:
    shown = [c for c in frame.columns if c != row_class]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown)
    body = []
    for _, row in frame.iterrows():
        css = f' class="{html.escape(str(row[row_class]))}"' if row_class else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{html.escape(str(row[c]))}</td>" for c in shown) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def strata_frame(summary: dict[str, Any], by: str) -> pd.DataFrame:
    """Accuracy and localization Dice (headline pairs) per stratum and model."""
    rows = [{"model": model, by: r["stratum"], "images": r["images"], "accuracy": fmt(r["accuracy"]),
             "Dice": fmt(r["dice"])} for model, strata in summary["strata"][by].items() for r in strata]
    return pd.DataFrame(rows)


def _shortcut_frame(summary: dict[str, Any]) -> pd.DataFrame:
    block = summary["shortcut"]
    rows = [{"model": model, "class": dx, "images": v["n"], "watermarked": v["n_watermarked"],
             "energy on watermark": fmt(v["watermark"]), "watermark area": fmt(v["area_watermark"]),
             "energy on lesions": fmt(v["lesions"]), "lesion area": fmt(v["area_lesions"])}
            for model, per in block["models"].items() for dx, v in per.items()]
    return pd.DataFrame(rows)


def _detail_frame(summary: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for selection, per_model in summary["localization"].items():
        for model, kinds in per_model.items():
            for kind, block in kinds.items():
                overall = block["overall"]
                rows.append({"selection": selection, "model": model, "map vs reference": kind,
                             "pairs": block["pairs"], **{s: fmt(overall[s]) for s in summary["scores"]},
                             "undefined (sens/spec/Dice)": "/".join(str(overall[s]["undefined"])
                                                                    for s in ("sensitivity", "specificity", "dice"))})
    return pd.DataFrame(rows)


def _paired_frame(summary: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame([{"A": p["a"], "B": p["b"], "map vs reference": p["kind"], "score": p["score"],
                          "A − B (images)": fmt(p["difference"]), "images": p["difference"]["n"]}
                         for p in summary["paired"]])


def _example_rows(examples: dict[str, np.ndarray], models: list[str], per_group: int) -> tuple[list[int], list[int]]:
    """Example indices where the first model is correct, and where it is wrong."""
    if not len(examples.get("stems", [])):
        return [], []
    predicted = examples[f"predicted:{models[0]}"]
    right = [i for i in range(len(predicted)) if predicted[i] == examples["reference"][i]]
    wrong = [i for i in range(len(predicted)) if predicted[i] != examples["reference"][i]]
    return right[:per_group], wrong[:per_group]


def render_report(run_dir: str | Path, *, examples_per_group: int = 4) -> Path:
    """Write ``report.html``, ``headline.csv`` and ``strata_<by>.csv`` into ``run_dir``; return the report."""
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    manifest = read_manifest(run_dir)
    models = list(summary["models"])
    listing = ", ".join(f"{m} ({v['kind']})" for m, v in summary["models"].items())
    parts = [f"<h1>dermx benchmark report</h1><p class='note'>{summary['images']} test images; models: "
             f"{html.escape(listing)}; {html.escape(map_grid_note(summary))}; "
             f"fusion {html.escape(summary['config']['fusion'])}; "
             f"maps compared at {html.escape(summary['config']['resolution'])} resolution; pairs: "
             f"{html.escape(summary['config']['selection'])}.</p>"]
    headline = headline_frame(summary)
    headline.drop(columns="type").to_csv(run_dir / "headline.csv", index=False)
    parts += ["<h2>Headline</h2>", _table(headline, "type"),
              "<p class='note'>Models: mean of image means with bootstrap 95 % CI over images. Raters: mean ± SD "
              "over rater pairs (leave-one-out: each rater against the fused map of the others). Baselines: "
              "image-independent maps scored on the first model's pairs. On synthetic data the columns "
              "<i>vs drawn lesions</i> score the same maps against the lesions the generator drew (the known "
              "answer), on the pairs where that characteristic was drawn: a map can disagree with the raters "
              "and still sit on the lesion, or miss both.</p>"]
    parts.append(leaderboard_section(run_dir))
    parts += ["<h2>Localization per characteristic</h2>",
              _figure(figures.characteristic_bars(summary), "per-characteristic localization")]
    if summary.get("shortcut"):
        parts += ["<h2>Shortcut: attention on the watermark</h2>",
                  _figure(figures.shortcut(summary), "shortcut energy shares"), _table(_shortcut_frame(summary))]
    examples_path = run_dir / "examples.npz"
    if examples_path.is_file():
        with np.load(examples_path, allow_pickle=False) as data:
            examples = {k: data[k] for k in data.files}
        for title, rows in zip(("correct", "incorrect"), _example_rows(examples, models, examples_per_group),
                               strict=True):
            if rows:
                parts += [f"<h2>Examples: {title} diagnoses of {html.escape(models[0])}</h2>",
                          _figure(figures.example_grid(examples, models, rows), f"{title} examples")]
    parts += ["<h2>Diagnosis</h2>", *(_figure(figures.confusion(summary, m), f"confusion {m}") for m in models),
              _figure(figures.per_class_f1(summary), "per-class F1"),
              _figure(figures.reliability(summary), "reliability diagram")]
    parts += ["<h2>Strata</h2>"]
    for by, title in (("skin_tone", "skin tone"), ("reference", "diagnosis"), ("age", "age group"),
                      ("correct", "correct diagnosis")):
        frame = strata_frame(summary, by)
        frame.to_csv(run_dir / f"strata_{by}.csv", index=False)
        parts += [f"<h3>By {title}</h3>", _table(frame)]
    parts += ["<h2>Localization detail</h2>", _table(_detail_frame(summary))]
    if summary["paired"]:
        parts += ["<h2>Paired comparison (Dice, same images and pairs)</h2>", _table(_paired_frame(summary))]
    if manifest:
        versions = pd.DataFrame([{"package": k, "version": v} for k, v in manifest["versions"].items()])
        parts += ["<h2>Manifest</h2>", _table(versions),
                  f"<pre>{html.escape(json.dumps(manifest, indent=2, default=str))}</pre>"]
    document = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>dermx report</title>"
                f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>")
    path = run_dir / REPORT
    path.write_text(document, encoding="utf-8")
    return path
