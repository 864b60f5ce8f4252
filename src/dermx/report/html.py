"""The self-contained HTML report of a benchmark run folder (charts inlined as base64 PNG, map panels
as JPEG (:mod:`dermx.report.panels`), no external CSS or JavaScript), plus its tables as CSV.

Numbers: an estimate with a CI reads ``0.812 [0.701, 0.903]`` (mean of image means, bootstrap 95 % CI
over patients: :mod:`dermx.evaluate.stats`); the conditional rater rows read ``0.650 ± 0.102`` (mean ± SD
over rater pairs or raters); ``–`` is undefined or not applicable.
"""

from __future__ import annotations

import base64
import html
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from dermx.explain.methods import method_title
from dermx.jsonio import strict_json
from dermx.report import figures, images, panels
from dermx.report.intervention_section import intervention_section
from dermx.report.leaderboard_section import leaderboard_section
from dermx.report.trust_section import trust_section
from dermx.report.verdict import PAIRED_KINDS, RULES, flags, gap_rule, grouped_by, verdict
from dermx.runs.examples import read_examples
from dermx.runs.manifest import manifest_rows, read_manifest
from dermx.runs.summary import read_summary
from dermx.runs.tables import read_tables

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
    "miss_rate": "characteristics missed",
    "char_dice_drawn": "characteristic maps vs drawn lesions: Dice",
    "pointing_drawn": "pointing game vs drawn lesions",
}
#: Each headline column in plain words (shown under the table and as the header's tooltip).
COLUMN_MEANINGS: dict[str, str] = {
    "diagnosis_f1": "how well the predicted diagnosis matches the reference diagnosis, averaged over the six "
                    "classes (1 = always right)",
    "identification_f1": "how well the model says which characteristics are present, averaged over the "
                         "characteristics",
    "char_dice": "overlap between the model's map of a characteristic and the raters' fused outline of it "
                 "(0 = no overlap, 1 = identical), on the pairs selected",
    "char_sensitivity": "share of the raters' outlined area that the model's map covers",
    "char_specificity": "share of the area no rater outlined that the model's map leaves cold",
    "union_dice": "overlap between the diagnosis map and the union of everything the raters outlined",
    "pointing": "how often the hottest point of the map lies within the tolerance of an area some rater outlined "
                "(the pointing game as papers define it; the tolerance is stated under the table)",
    "miss_rate": "share of the characteristics the raters outlined that the model calls absent; each such miss "
                 "scores 0 on every map score",
    "char_dice_drawn": "as the characteristic-map Dice, but against the lesions the synthetic generator really "
                       "drew (the known answer)",
    "pointing_drawn": "as the pointing game, but against the drawn lesions",
}
#: Headline columns present only for synthetic data (the generator's known answer).
DRAWN_COLUMNS: tuple[str, ...] = ("char_dice_drawn", "pointing_drawn")
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:1.8em}
nav.toc{background:#f6f6f6;border:1px solid #ddd;padding:6px 14px;font-size:0.9em;display:inline-block}
nav.toc ol{margin:4px 0;padding-left:20px;columns:2;column-gap:36px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:0.86em}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
tr.raters td,tr.raters-conditional td{background:#f4f8ff}tr.baseline td{color:#666}
td.flag{background:#fff1e6;color:#9a3b00;font-weight:600}.wide{overflow-x:auto}td small{color:#666}
td.na{text-align:left;font-size:0.85em;color:#666;
min-width:12em}.verdict{background:#f6f9f2;border-left:4px solid #5a8f29;
padding:6px 14px;margin:10px 0}.verdict li{margin:4px 0}dl.legend{font-size:0.86em;color:#444;overflow:hidden}
dl.legend dt{font-weight:600;float:left;clear:left;width:17em}dl.legend dd{margin-left:18em;margin-bottom:3px}
details{margin:8px 0}summary{cursor:pointer;color:#335}
table.sortable th{cursor:pointer}table.sortable th:hover{background:#e6ecf5}
section.drilldown{border-top:1px dashed #ccc;margin-top:18px}
body:has(section.drilldown:target)>:not(section.drilldown:target){display:none}
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


def map_grid_note(summary: dict[str, Any]) -> str:
    """What each model's maps are made of, e.g. "Grad-CAM on an 8×8 grid, upsampled to 64 px" ("an"
    before the numbers read with a leading vowel: 8, 11, 18, 80-89)."""
    method = method_title(summary["config"]["method"])
    notes: dict[str, list[str]] = {}
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


def headline_html(summary: dict[str, Any]) -> str:
    """The headline table; a model's cell is flagged (class ``flag``, ⚠) where its 95 % CI is not above
    every baseline's (:func:`dermx.report.verdict.flags`); headers carry :data:`COLUMN_MEANINGS` as tooltips."""
    columns = headline_columns(summary)
    flagged = flags(summary)
    head = "".join(f'<th title="{html.escape(COLUMN_MEANINGS.get(key, ""))}">{html.escape(label)}</th>'
                   for key, label in columns.items())
    body = []
    for row in summary["headline"]:
        cells = [f"<td>{html.escape(row['source'])}</td>"]
        for key in list(columns)[1:]:
            missed = flagged.get((row["source"], key)) if row["type"] == "model" else None
            if missed:
                cells.append(f'<td class="flag" title="not above the baseline(s): {html.escape(", ".join(missed))}">'
                             f"⚠ {fmt(row.get(key))}</td>")
            else:
                cells.append(f"<td>{fmt(row.get(key))}</td>")
        body.append(f'<tr class="{html.escape(row["type"])}">{"".join(cells)}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def verdict_html(summary: dict[str, Any]) -> str:
    """The verdict sentences (:func:`dermx.report.verdict.verdict`) as a list, with the rule they follow;
    first, for a demo run, its checks worded as findings (``summary["checks"]``, what the console said)."""
    items = "".join(f"<li>{html.escape(sentence)}</li>" for sentence in verdict(summary))
    checks = "".join(f"<li>{'✓' if c['passed'] else '✗'} {html.escape(c['finding'])}</li>"
                     for c in summary.get("checks", []))
    stated = (f"<p><b>What the demo set out to show</b> (each read from a 95 % CI; thresholds fixed before the "
              f"run)</p><ul class='checks'>{checks}</ul>" if checks else "")
    return (f"<div class='verdict' id='verdict'><b>Verdict</b>{stated}<ul>{items}</ul><p class='note'>"
            f"{html.escape(RULES)} {html.escape(gap_rule(grouped_by(summary)))}</p></div>")


def protocol_note(summary: dict[str, Any]) -> str:
    """Which raters the references come from, and whether the models learned from the same ones (DermX+
    learns its attention from the raters' maps: scored against the same raters, it is scored on their
    style as well as on the lesions)."""
    chosen = summary["config"].get("raters")
    references = f"raters {', '.join(chosen)}" if chosen else "every first-pass rater"
    learned = {m: info.get("trained_raters") for m, info in summary["models"].items()}
    if chosen and all(isinstance(r, list) and not set(r) & set(chosen) for r in learned.values()):
        return (f"References: {references}, none of whom the models learned from (held-out raters: "
                + "; ".join(f"{m} learned from {', '.join(r)}" for m, r in learned.items()) + ").")
    same = [m for m, r in learned.items()
            if r == "all" or (isinstance(r, list) and (not chosen or set(r) & set(chosen)))]
    unknown = [m for m, r in learned.items() if r is None]
    text = f"References: {references}."
    if same:
        text += (f" {', '.join(same)} learned from these same raters: its maps are scored on their style as well as "
                 "on the lesions (a held-out-raters run: train with --raters on some, evaluate with --raters on the "
                 "others).")
    if unknown:
        text += f" Which raters {', '.join(unknown)} learned from is not recorded."
    return text


def _headline_note(summary: dict[str, Any]) -> str:
    """What each headline row's numbers are, the unit of the intervals and the pointing tolerance."""
    unit = "patients" if summary["patients"] < summary["images"] else "patients (one image each)"
    tolerance = summary["config"]["pointing_tolerance"]
    return (f"Models: mean of image means with a bootstrap 95 % CI over {unit} ({summary['patients']} patients, "
            f"{summary['images']} images; the images of a patient are drawn together). A characteristic a model "
            "calls absent scores 0 on every map score. Raters, leave-one-out: each rater scored exactly as the "
            "models (against the fusion of the other raters, on the models' pairs, a rater who did not outline it "
            "scoring 0), with its CI; diagnosis F1: each rater against the reference, identification F1: each rater "
            "against the others. The conditional rows are the older ceiling: only raters who outlined a "
            "characteristic, on images where two did, mean ± SD over raters or rater pairs (unordered pairs for "
            "Dice). Baselines: image-independent "
            f"maps scored on the first model's pairs. Pointing game: a hit within {100 * tolerance:.1f} % of the "
            "shorter side of the map (TorchRay's 15 px at 224 px). On synthetic data the columns vs drawn lesions "
            "score the same maps against the lesions the generator drew (the known answer), on the pairs where that "
            "characteristic was drawn: a map can disagree with the raters and still sit on the lesion, or miss both.")


def _legend(summary: dict[str, Any]) -> str:
    items = "".join(f"<dt>{html.escape(label)}</dt><dd>{html.escape(COLUMN_MEANINGS[key])}</dd>"
                    for key, label in headline_columns(summary).items() if key in COLUMN_MEANINGS)
    return f"<dl class='legend'>{items}</dl>"


def _manifest_html(manifest: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td style='text-align:left'>{html.escape(v)}</td></tr>"
                   for k, v in manifest_rows(manifest))
    raw = html.escape(strict_json(manifest))
    return (f"<table><tbody>{rows}</tbody></table>"
            f"<details><summary>Raw manifest (manifest.json)</summary><pre>{raw}</pre></details>")


def _figure(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def strata_frame(summary: dict[str, Any], by: str) -> pd.DataFrame:
    """Accuracy and localization Dice (headline pairs) per stratum and model."""
    rows = [{"model": model, by: r["stratum"], "images": r["images"], "patients": r["patients"],
             "accuracy (Wilson 95 % CI)": fmt(r["accuracy"]), "Dice (95 % CI over patients)": fmt(r["dice"])}
            for model, strata in summary["strata"][by].items() for r in strata]
    return pd.DataFrame(rows)


def _shortcut_frame(summary: dict[str, Any]) -> pd.DataFrame:
    block = summary["shortcut"]
    rows = [{"model": model, "class": dx, "images": v["n"], "watermarked": v["n_watermarked"],
             "energy on watermark": fmt(v["watermark"]), "watermark area": fmt(v["area_watermark"]),
             "energy on lesions": fmt(v["lesions"]), "lesion area": fmt(v["area_lesions"])}
            for model, per in block["models"].items() for dx, v in per.items()]
    return pd.DataFrame(rows)


def shortcut_test_html(summary: dict[str, Any]) -> str:
    """The counterfactual shortcut test (:mod:`dermx.evaluate.benchmark.shortcut`) as a sentence and a table; empty
    when the run has none."""
    test = summary.get("shortcut_test")
    if not test or not test["models"]:
        return ""
    cls = html.escape(test["class"])
    rows = [{"model": model, "stamped images": e["n"], f"flip rate to {test['class']}": fmt(e["flip_rate"]),
             f"Δp({test['class']})": fmt(e["delta_p"]),
             "map energy on the logo / its area (flipped images)": fmt(e["energy_ratio"])}
            for model, e in test["models"].items()]
    learned = [m for m, e in test["models"].items() if (e.get("flip_rate") or {}).get("low", 0) > 0]
    said = (f"{', '.join(map(html.escape, learned))} learned the shortcut: the logo alone turns other classes' "
            f"images into {cls}." if learned else "No model's diagnosis depends on the logo: none learned it.")
    return (f"<h3>Counterfactual test: the logo stamped on other classes' test images</h3><p>{said} Only the logo "
            f"differs between the two versions an image is shown in, so a flip to {cls} is caused by it; on the "
            f"flipped images, a ratio above 1 means the {cls} map points at the logo. On naturally watermarked "
            f"{cls} images (above) the class's own lesions share that evidence.</p>" + _table(pd.DataFrame(rows)))


UNDEFINED_COLUMN = "pairs without a score (sensitivity / specificity / Dice)"


def _detail_frame(summary: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for selection, per_model in summary["localization"].items():
        for model, kinds in per_model.items():
            for kind, block in kinds.items():
                overall = block["overall"]
                rows.append({"selection": selection, "model": model, "map vs reference": kind,
                             "pairs": block["pairs"], **{s: fmt(overall[s]) for s in summary["scores"]},
                             UNDEFINED_COLUMN: "/".join(str(overall[s]["undefined"])
                                                   for s in ("sensitivity", "specificity", "dice"))})
    return pd.DataFrame(rows)


def _paired_frame(summary: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame([{"A": p["a"], "B": p["b"], "maps": PAIRED_KINDS.get(p["kind"], p["kind"]), "score": p["score"],
                          "A − B, 95 % CI over patients": fmt(p["difference"]), "images": p["difference"]["n"]}
                         for p in summary["paired"]])


def _missing_note(summary: dict[str, Any]) -> str:
    folder = summary.get("image_folder")
    if not folder or not folder.get("missing"):
        return ""
    return (f" Image folder: found {folder['found']} of {folder['expected']} images; the {folder['missing']} "
            f"missing are listed in {folder['missing_file']}.")


def _tested_note(model: dict[str, Any]) -> str:
    """``; N test images: how they were chosen`` from a model's ``summary.json`` entry (empty if unknown)."""
    tests = model.get("test_images")
    return f"; {tests['n']} test images: {'; '.join(tests['rules'])}" if tests and tests.get("rules") else ""


_SECTION = re.compile(r"<h2(?P<attrs>[^>]*)>(?P<title>.*?)</h2>", re.S)


def with_contents(body: str) -> str:
    """``body`` preceded by a table of contents of its ``<h2>`` sections, each given an ``id`` (``s1``,
    ``s2``, ...) where it has none."""
    entries: list[tuple[str, str]] = []

    def label(match: re.Match[str]) -> str:
        attrs = match["attrs"]
        found = re.search(r"id=['\"]([^'\"]+)['\"]", attrs)
        anchor = found.group(1) if found else f"s{len(entries) + 1}"
        entries.append((anchor, re.sub(r"<[^>]+>", "", match["title"])))
        return match.group(0) if found else f"<h2 id='{anchor}'{attrs}>{match['title']}</h2>"

    labelled = _SECTION.sub(label, body)
    items = "".join(f"<li><a href='#{a}'>{t}</a></li>" for a, t in entries)
    return f"<nav class='toc'><b>Contents</b><ol>{items}</ol></nav>{labelled}"


def render_report(run_dir: str | Path) -> Path:
    """Write ``report.html``, ``headline.csv`` and ``strata_<by>.csv`` into ``run_dir``; return the report."""
    run_dir = Path(run_dir)
    summary = read_summary(run_dir, ("benchmark",))
    manifest = read_manifest(run_dir)
    models = list(summary["models"])
    listing = ", ".join(f"{m} ({v['kind']}{_tested_note(v)})" for m, v in summary["models"].items())
    map_size = summary["config"]["map_size"]
    parts = [f"<h1>dermx benchmark report</h1><p class='note'>{summary['images']} test images; models: "
             f"{html.escape(listing)}; {html.escape(map_grid_note(summary))}; "
             f"fusion {html.escape(summary['config']['fusion'])}; "
             f"maps compared at {html.escape(map_size)} resolution; pairs: "
             f"{html.escape(summary['config']['selection'])}.{html.escape(_missing_note(summary))}</p>",
             f"<p class='note'><b>{html.escape(protocol_note(summary))}</b></p>"]
    parts.append(verdict_html(summary))
    headline_frame(summary).drop(columns="type").to_csv(run_dir / "headline.csv", index=False)
    parts += ["<h2>Headline</h2>", headline_html(summary),
              f"<p class='note'>{html.escape(_headline_note(summary))}</p>", _legend(summary)]
    if summary["paired"]:
        parts += ["<h3>Paired comparison (same images and pairs)</h3>", _table(_paired_frame(summary))]
    parts.append(leaderboard_section(run_dir))
    parts += ["<h2>Localization per characteristic</h2>",
              _figure(figures.characteristic_bars(summary), "per-characteristic localization")]
    if summary.get("shortcut"):
        parts += ["<h2>Shortcut: attention on the watermark</h2>",
                  _figure(figures.shortcut(summary), "shortcut energy shares"), _table(_shortcut_frame(summary)),
                  shortcut_test_html(summary)]
    examples = read_examples(run_dir)
    if examples is not None:
        parts.append(images.examples_html(examples, models))
    parts += ["<h2>Diagnosis</h2>", *(_figure(figures.confusion(summary, m), f"confusion {m}") for m in models),
              _figure(figures.per_class_f1(summary), "per-class F1"),
              _figure(figures.reliability(summary), "reliability diagram")]
    parts.append(trust_section(summary, _table))
    parts.append(intervention_section(summary, _table))
    parts += ["<h2>Strata</h2>"]
    for by, title in (("skin_tone", "skin tone"), ("reference", "diagnosis"), ("age", "age group"),
                      ("correct", "correct diagnosis")):
        frame = strata_frame(summary, by)
        frame.to_csv(run_dir / f"strata_{by}.csv", index=False)
        parts += [f"<h3>By {title}</h3>", _table(frame)]
    parts += ["<h2>Localization detail</h2>", _table(_detail_frame(summary)),
              f"<p class='note'>{UNDEFINED_COLUMN}: a score is left out, not counted as 0, when it has no "
              "meaning: sensitivity and pointing when the reference map is empty (nothing outlined), specificity "
              "when the reference covers the whole image, Dice when both maps are empty. Pointing game: how often "
              "the map's hottest point lies on the reference; energy: the share of the map's heat that falls "
              "on the reference.</p>"]
    tables = read_tables(run_dir)
    items = tables.get("items")
    linked = {str(s) for s in examples["stems"]} if examples is not None else set()
    if items is not None and "images" in tables:
        parts.append(images.image_table(tables["images"], items, models, linked, grouped_by(summary)))
    if examples is not None:
        parts.append(images.drilldown_html(examples, items, models))
    if manifest:
        parts += ["<h2>Manifest</h2>", _manifest_html(manifest)]
    style = _STYLE + panels.panel_style()  # the example grids' and the leaderboard's panels
    head, body = parts[:2], with_contents("".join(parts[2:]))
    document = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>dermx report</title>"
                f"<style>{style}</style></head><body>{''.join(head)}{body}</body></html>")
    path = run_dir / REPORT
    path.write_text(document, encoding="utf-8")
    return path
