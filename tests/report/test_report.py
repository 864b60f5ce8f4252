from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dermx.cli import app
from dermx.data import data_identity
from dermx.evaluate.benchmark.run import write_benchmark
from dermx.report import render_report
from dermx.runs.manifest import build_manifest, write_manifest
from report.oracle import oracle_run

pytestmark = pytest.mark.slow  # end-to-end runs: `make test`, not `make test-fast`

CHROMIUM = Path("/usr/bin/chromium")


class _Collector(HTMLParser):
    """Images' sources, the text cells of every table, ids, links, the verdict and flagged cells."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.alts: list[str] = []
        self.tables: list[list[str]] = []
        self._cell: list[str] | None = None
        self.external: list[str] = []
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.verdict: list[str] = []
        self.flagged = 0
        self._verdict_depth = 0
        self.h3: list[str] = []
        self._h3: list[str] | None = None
        self.grids: list[str] = []  # aria-labels of the panel grids
        self.grid_rows: list[list[str]] = []  # per panel row: the classes of its children's tags

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("src") or "")
            self.alts.append(values.get("alt") or "")
        if tag == "div" and values.get("class") == "panels":
            self.grids.append(values.get("aria-label") or "")
        if tag == "div" and values.get("class") == "prow":
            self.grid_rows.append([])
        elif self.grid_rows and tag in ("figure", "i"):
            self.grid_rows[-1].append(values.get("class") or tag)
        if tag == "link" or (tag == "script" and values.get("src")):
            self.external.append(tag)
        if values.get("id"):
            self.ids.add(values["id"] or "")
        if tag == "a" and values.get("href"):
            self.links.append(values["href"] or "")
        if (tag == "div" and values.get("id") == "verdict") or (self._verdict_depth and tag == "div"):
            self._verdict_depth += 1
        if tag == "td" and values.get("class") == "flag":
            self.flagged += 1
        if tag == "h3":
            self._h3 = []
        if tag == "table":
            self.tables.append([])
        if tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.tables[-1].append("".join(self._cell).strip())
            self._cell = None
        if tag == "div" and self._verdict_depth:
            self._verdict_depth -= 1
        if tag == "h3" and self._h3 is not None:
            self.h3.append("".join(self._h3))
            self._h3 = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._verdict_depth:
            self.verdict.append(data)
        if self._h3 is not None:
            self._h3.append(data)


def _parse(report: Path) -> _Collector:
    parser = _Collector()
    parser.feed(report.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench")
    _, result = oracle_run(root / "data")
    run_dir = root / "run"
    write_benchmark(result, run_dir)
    write_manifest(run_dir, build_manifest(config={"test": True}, seeds={"bootstrap": 0},
                                           data=data_identity(root / "data"), command=["pytest"]))
    return render_report(run_dir)


def test_report_is_self_contained_with_figures_and_filled_tables(report: Path) -> None:
    parser = _Collector()
    parser.feed(report.read_text(encoding="utf-8"))
    assert not parser.external
    assert len(parser.images) >= 7  # bars, shortcut, examples, 2 confusions, per-class F1, reliability
    assert all(src.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for src in parser.images)
    assert len(parser.tables) >= 8
    for cells in parser.tables:
        numbers = [c for c in cells if c not in ("–", "") and any(ch.isdigit() for ch in c)]
        assert numbers, cells
    assert not [c for cells in parser.tables for c in cells if c.lower() == "nan"]
    for name in ("headline.csv", "strata_skin_tone.csv", "strata_reference.csv", "summary.json", "manifest.json"):
        assert (report.parent / name).is_file(), name


def _screenshot(url: str, shot: Path) -> Image.Image:
    profile = tempfile.mkdtemp()
    try:
        subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                        f"--screenshot={shot}", "--window-size=1280,2000", url],
                       check=True, capture_output=True, timeout=180)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    with Image.open(shot) as image:
        return image.convert("RGB")


@pytest.mark.browser
def test_report_and_a_drilldown_render_in_headless_chromium(report: Path) -> None:
    import numpy as np

    from dermx.report.images import anchor

    if not CHROMIUM.is_file():
        pytest.skip("needs /usr/bin/chromium (apt-get install -y chromium)")
    top = _screenshot(report.as_uri(), report.parent / "report.png")
    assert top.size == (1280, 2000)
    assert len(set(top.convert("L").getdata())) > 20  # not a blank page
    with np.load(report.parent / "examples.npz") as examples:
        stem = str(examples["stems"][0])
    detail = _screenshot(f"{report.as_uri()}#{anchor(stem)}", report.parent / "drilldown.png")
    assert len(set(detail.convert("L").getdata())) > 20
    # the fragment scrolled the page to the drill-down: a different view than the top of the report
    difference = np.abs(np.asarray(top, dtype=int) - np.asarray(detail, dtype=int)).mean()
    assert difference > 5


def test_header_states_each_models_map_grid() -> None:
    from dermx.report.html import map_grid_note

    def summary(**models: tuple[list[int], list[int]]) -> dict:
        return {"config": {"method": "gradcam"},
                "models": {m: {"map_grid": g, "input_size": s} for m, (g, s) in models.items()}}

    assert map_grid_note(summary(a=([8, 8], [64, 64]), b=([8, 8], [64, 64]))) == \
        "Grad-CAM on an 8×8 grid, upsampled to 64 px"
    assert map_grid_note(summary(a=([4, 4], [128, 128]), b=([7, 7], [224, 256]))) == \
        "a: Grad-CAM on a 4×4 grid, upsampled to 128 px; b: Grad-CAM on a 7×7 grid, upsampled to 224×256 px"
    assert map_grid_note({"config": {"method": "scorecam"}, "models": {"old": {}}}) == "CAM method Score-CAM"


def test_terminal_headline_fits_80_columns_without_cutting_numbers() -> None:
    from rich.console import Console

    from dermx.report.terminal import headline_table

    def e(mean: float) -> dict[str, float]:
        return {"mean": mean, "low": mean - 0.02, "high": mean + 0.02}

    rows = [{"source": "DermX+", "type": "model", "diagnosis_f1": e(0.963), "char_dice": e(0.315),
             "pointing": e(0.402), "char_dice_drawn": e(0.284), "char_sensitivity": e(0.7)},
            {"source": "raters, leave-one-out", "type": "raters", "diagnosis_f1": {"mean": 0.886, "sd": 0.015},
             "char_dice": {"mean": 0.641, "sd": 0.216}},
            {"source": "baseline: gaussian", "type": "baseline", "char_dice": e(0.171), "pointing": e(0.145),
             "char_dice_drawn": e(0.135)}]
    console = Console(width=80, record=True)
    console.print(headline_table({"headline": rows}))
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    for value in ("0.963", "0.315", "[0.295,", "0.402", "0.284", "0.641 ±", "raters, leave-one-out", "Dice vs"):
        assert value in text, value


def test_verdict_states_baselines_gap_and_paired_difference(report: Path) -> None:
    import json

    parser = _parse(report)
    verdict = " ".join(parser.verdict)
    summary = json.loads((report.parent / "summary.json").read_text())
    # the oracle returns the experts' fused maps: above every baseline, and its gap share is computed
    assert "oracle: Characteristic-map Dice against the raters" in verdict
    assert "is above every baseline" in verdict and "of the gap from the best baseline" in verdict
    # the watermark model points at the watermark: flagged as not above a baseline, in words and in the table
    assert "watermark: Characteristic-map Dice against the raters" in verdict and "is NOT above the" in verdict
    assert parser.flagged >= 1
    assert "oracle is better than watermark on characteristic-map Dice" in verdict
    assert len(summary["paired"]) >= 1
    # the paired table sits right after the headline, before the first figure section
    text = report.read_text(encoding="utf-8").split("</nav>", 1)[1]  # the sections, after the contents
    assert text.index("Paired comparison") < text.index("Localization per characteristic")


def test_manifest_is_a_table_with_the_raw_json_collapsed(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    manifest = text[text.index(">Manifest</h2>"):]
    assert "<td>data identity</td>" in manifest and "<td>command</td>" in manifest and "pytest" in manifest
    assert "<details><summary>Raw manifest" in manifest


def test_examples_per_class_with_colour_bars_and_drilldowns(report: Path) -> None:
    import numpy as np

    parser = _parse(report)
    with np.load(report.parent / "examples.npz") as examples:
        classes = sorted({str(r) for r in examples["reference"]})
        stems = [str(s) for s in examples["stems"]]
        reasons = [str(r) for r in examples["reasons"]]
    assert len(classes) >= 4
    assert sorted(h for h in parser.h3 if h in classes) == classes  # one example grid per class
    assert all(f"examples of {c}" in parser.grids for c in classes)
    assert any("incorrect" in r for r in reasons) and any("watermarked" in r for r in reasons)
    assert any("best agreement" in r for r in reasons)
    from dermx.report.images import anchor

    for stem in stems:  # every example has a drill-down section, linked from the grid and the image table
        assert anchor(stem) in parser.ids
        assert parser.links.count(f"#{anchor(stem)}") >= 2, stem
    assert "images" in parser.ids and "<table class='sortable'>" in report.read_text(encoding="utf-8")


def test_every_row_of_map_panels_has_the_colour_bar(report: Path) -> None:
    """Every row of the example and drill-down grids ends with the colour bar, a picture inlined once (the
    style's ``.cbar`` background) holding a vertical run of viridis colours."""
    import base64
    import io
    import re

    import numpy as np
    from matplotlib import colormaps

    parser = _parse(report)
    assert any(g.startswith("examples of") for g in parser.grids) and any(g.startswith("all maps of")
                                                                          for g in parser.grids)
    assert parser.grid_rows and all(row[-1] == "cbar" and "figure" in row for row in parser.grid_rows)
    text = report.read_text(encoding="utf-8")
    bars = re.findall(r"\.cbar\{[^}]*url\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", text)
    assert len(bars) == 1 and text.count(bars[0]) == 1
    with Image.open(io.BytesIO(base64.b64decode(bars[0]))) as picture:
        pixels = np.asarray(picture.convert("RGB")).astype(int)
    viridis = colormaps["viridis"](np.linspace(0, 1, 64), bytes=True)[:, :3].astype(int)
    near = np.abs(pixels[:, :, None, :] - viridis[None, None]).sum(axis=3).min(axis=2) < 12
    assert near.sum(axis=0).max() > 0.8 * pixels.shape[0]


def test_report_is_a_few_mb_with_jpeg_panels_at_display_size(report: Path) -> None:
    """Map panels are JPEG pictures no larger than they are shown (:data:`dermx.report.panels.PANEL`)."""
    import base64
    import io

    from dermx.report.panels import PANEL

    panels = [src for src in _parse(report).images if src.startswith("data:image/jpeg")]
    assert panels
    for src in panels:
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as picture:
            assert max(picture.size) == PANEL


def _panel(src: str) -> np.ndarray:
    import base64
    import io

    with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as picture:
        return np.asarray(picture.convert("RGB")).astype(int)


def test_drilldown_outlines_every_rater(report: Path) -> None:
    """``examples.npz`` holds each rater's masks (their mean is the experts' fused map); the drill-down names
    every rater with a colour and draws their outlines on the image."""
    import numpy as np

    from dermx.report.images import anchor
    from dermx.report.panels import RATER_COLOURS
    from dermx.runs.examples import rater_masks

    with np.load(report.parent / "examples.npz") as data:
        examples = {k: data[k] for k in data.files}
    for i in range(len(examples["stems"])):
        names, masks = rater_masks(examples, i)
        assert 3 <= len(names) == len(masks)
        assert np.allclose(masks.mean(axis=0), examples["fused"][i].astype(np.float32), atol=2e-3)
    text = report.read_text(encoding="utf-8")
    stem = str(examples["stems"][0])
    section = text[text.index(f"id='{anchor(stem)}'"):]
    section = section[:section.index("</section>")]
    names, masks = rater_masks(examples, 0)
    legend = section[section.index("Raters' outlines:"):]
    assert all(name in legend for name in names)
    parser = _Collector()
    parser.feed(section)
    plain, outlined = (_panel(parser.images[0]), _panel(parser.images[1]))  # the image; all raters' outlines
    changed = np.abs(outlined - plain).sum(axis=2) > 120
    assert changed.sum() > 50
    colours = np.asarray(RATER_COLOURS[:len(names)])
    nearest = np.abs(outlined[changed][:, None] - colours[None]).sum(axis=2).min(axis=1)
    assert np.median(nearest) < 90  # the changed pixels are drawn in the raters' colours


def test_a_run_folder_of_an_older_dermx_is_refused_with_the_reason(report: Path, tmp_path: Path) -> None:
    """A folder written before run folders carried a schema (or of another schema) is not half read: the
    report and `dermx report` say which version wrote it and what to do."""
    from dermx.runs.layout import SCHEMA, RunFolderError

    summary = json.loads((report.parent / "summary.json").read_text())
    assert summary["schema"] == SCHEMA and summary["kind"] == "benchmark"
    for name in ("items.csv", "images.csv", "examples.npz"):
        shutil.copy(report.parent / name, tmp_path / name)
    (tmp_path / "summary.json").write_text(json.dumps({k: v for k, v in summary.items() if k != "schema"}))
    with pytest.raises(RunFolderError, match=r"written by an older dermx .* run the command that made the folder"):
        render_report(tmp_path)
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "older dermx" in result.output and "Traceback" not in result.output


def test_the_counterfactual_shortcut_test_is_in_words_and_a_table() -> None:
    from dermx.report.html import shortcut_test_html

    def e(mean: float, low: float, high: float) -> dict[str, float]:
        return {"mean": mean, "low": low, "high": high}

    summary = {"shortcut_test": {"class": "Psoriasis", "models": {
        "DermX": {"n": 152, "flip_rate": e(0.41, 0.33, 0.49), "delta_p": e(0.35, 0.29, 0.41),
                  "energy_ratio": e(3.2, 3.0, 3.4)},
        "DermX+": {"n": 152, "flip_rate": e(0.0, 0.0, 0.0), "delta_p": e(0.0, 0.0, 0.01), "energy_ratio": None}}}}
    text = shortcut_test_html(summary)
    assert "DermX learned the shortcut" in text and "DermX+ learned" not in text
    assert "3.200 [3.000, 3.400]" in text and text.count("<tr>") == 3
    assert shortcut_test_html({}) == "" and shortcut_test_html({"shortcut_test": {"class": "Acne", "models": {}}}) == ""


def test_the_contents_link_every_section(report: Path) -> None:
    """A table of contents lists every ``<h2>`` section and each entry's link lands on one."""
    import re

    text = report.read_text(encoding="utf-8")
    nav = re.search(r"<nav class='toc'>(.*?)</nav>", text, re.S)
    assert nav is not None
    links = re.findall(r"href='#([^']+)'>([^<]+)<", nav.group(1))
    sections = re.findall(r"<h2 id='([^']+)'[^>]*>(.*?)</h2>", text, re.S)
    assert len(links) == len(sections) >= 8
    assert [a for a, _ in links] == [a for a, _ in sections] and len({a for a, _ in links}) == len(links)
    assert {"Headline", "Diagnosis", "Examples"} <= {t for _, t in links}


def test_example_panels_hatch_the_padding_of_the_model_input(report: Path) -> None:
    """Old code: the padding showed as black bars, indistinguishable from a dark image border. The
    examples now record the image's box in the input, and the panels draw the rest hatched."""
    import numpy as np

    from dermx.explain.overlay import HATCH_GREY, PADDING_GREY
    from dermx.report.panels import panel
    from dermx.runs.examples import INSIDE, read_examples

    examples = read_examples(report.parent)
    assert examples is not None and INSIDE in examples
    image = examples["image"][0]
    top, _, height, width = (int(v) for v in examples[INSIDE][0])
    assert (height, width) != image.shape[:2]  # the synthetic images (48×56) are padded into a square input
    pixels = np.asarray(panel(image, None, None, (), examples[INSIDE][0]))
    band = pixels[:2] if top > 0 else pixels[:, :2]
    assert set(np.unique(band)) <= {PADDING_GREY, HATCH_GREY} and {PADDING_GREY, HATCH_GREY} <= set(np.unique(band))
    plain = np.asarray(panel(image))
    assert not set(np.unique(plain[:2] if top > 0 else plain[:, :2])) <= {PADDING_GREY, HATCH_GREY}


def test_the_trust_section_renders_and_a_run_from_before_it_still_renders(report: Path, tmp_path: Path) -> None:
    """The section "Trust per skin tone" (one table and one reliability figure per model); a summary.json
    without the keys ``groups``, ``calibration``, ``conformal`` and ``selective`` (an older run of this
    schema) renders without it."""
    text = report.read_text(encoding="utf-8")
    assert "Trust per skin tone</h2>" in text and 'alt="reliability per skin tone oracle"' in text
    assert "model carries no calibration" in text
    summary = json.loads((report.parent / "summary.json").read_text())
    for name in ("items.csv", "images.csv", "examples.npz", "manifest.json"):
        shutil.copy(report.parent / name, tmp_path / name)
    old = {k: v for k, v in summary.items() if k not in ("groups", "calibration", "conformal", "selective")}
    (tmp_path / "summary.json").write_text(json.dumps(old))
    rendered = render_report(tmp_path).read_text(encoding="utf-8")
    assert "Trust per skin tone" not in rendered and "Headline</h2>" in rendered


def test_a_paired_sentence_says_whether_the_ci_excludes_zero_or_the_scores_are_identical() -> None:
    """A − B's CI above 0, below 0, across 0, or 0 in every resample (a bottleneck made from the other's network
    keeps its characteristic maps: 'do not differ' would suggest a test that could have found a difference)."""
    from dermx.report.verdict import paired_sentence

    def pair(mean: float, low: float, high: float) -> dict[str, object]:
        return {"a": "DermX", "b": "CBM", "kind": "characteristic", "score": "dice",
                "difference": {"mean": mean, "low": low, "high": high, "n": 188}}

    assert paired_sentence(pair(0.02, 0.01, 0.03)).startswith("DermX is better than CBM on characteristic-map Dice")
    assert paired_sentence(pair(-0.02, -0.03, -0.01)).startswith("CBM is better than DermX")
    assert paired_sentence(pair(0.0, -0.01, 0.01)).endswith("; the CI includes 0.")
    same = paired_sentence(pair(0.0, 0.0, 0.0))
    assert same.startswith("DermX and CBM score the same on characteristic-map Dice: DermX − CBM = 0 in every "
                           "resample on the same 188 images") and "do not differ" not in same


def test_a_difference_that_rounds_to_zero_reads_plus_zero() -> None:
    from dermx.report.verdict import Estimate

    assert Estimate(-0.0001, -0.021, 0.0004).signed() == "+0.000 [-0.021, +0.000]"
    assert Estimate(-0.0006).signed() == "-0.001"
    assert str(Estimate(-0.0001, -0.0004, 0.5)) == "0.000 [0.000, 0.500]" and str(Estimate(-0.0006)) == "-0.001"
