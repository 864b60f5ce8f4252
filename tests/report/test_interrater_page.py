"""``dermx report`` on a ``dermx interrater`` folder: its own self-contained page."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from dermx.cli import app
from dermx.report.interrater_page import markdown_to_html
from support import polygon

SQUARE = [(0, 0), (9, 0), (9, 9), (0, 9)]
SHIFTED = [(5, 0), (14, 0), (14, 9), (5, 9)]


def test_markdown_tables_become_html_tables() -> None:
    text = markdown_to_html("**Title**: x\n\n| a | n |\n|---|---:|\n| Plaque | 2 |\n| **overall** | 3 |")
    assert text == ("<p><b>Title</b>: x</p><table><thead><tr><th>a</th><th>n</th></tr></thead><tbody>"
                    "<tr><td>Plaque</td><td>2</td></tr><tr><td><b>overall</b></td><td>3</td></tr></tbody></table>")


def test_report_renders_an_interrater_folder(make_dermxdb, tmp_path: Path) -> None:
    w = make_dermxdb()
    for annotator, shape in (("labeller1", SQUARE), ("labeller2", SHIFTED), ("labeller12", SQUARE)):
        w.annotation(annotator, "img1", [{"name": "Psoriasis", "tag": {}}, {"name": "Female", "tag": {}},
                                         {"name": "Plaque", **polygon(shape)}])
    w.metadata([("img1", "Psoriasis")])
    out = tmp_path / "agreement"
    assert CliRunner().invoke(app, ["interrater", "--data", str(w.root), "--out", str(out)]).exit_code == 0
    result = CliRunner().invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "interrater.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in page and "<script" not in page and "<link" not in page
    assert "<th>tag (not outlined): identification, between raters</th>" in page
    assert "<b>Intra-rater (repeat pass)</b>" in page and "<td>Plaque</td>" in page
    assert not (out / "report.html").exists()
