"""``dermx report`` on a ``dermx interrater`` folder: one self-contained HTML page (``interrater.html``)
with the same tables as ``tables.md`` (between raters, then the repeat pass) and the localization figure
inlined.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from dermx.runs.interrater import markdown_tables
from dermx.runs.summary import read_summary

PAGE = "interrater.html"
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;color:#222}
table{border-collapse:collapse;margin:8px 0 16px;font-size:0.86em}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}img{max-width:100%}p{max-width:60em}
"""


def _inline(text: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(text))


def markdown_to_html(markdown: str) -> str:
    """The subset of Markdown that :func:`markdown_tables` writes: pipe tables, paragraphs, ``**bold**``."""
    out: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if table:
            head, *rows = table
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr></thead><tbody>"
                       + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in rows)
                       + "</tbody></table>")
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                table.append(cells)
            continue
        flush()
        if line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    flush()
    return "".join(out)


def render_interrater(run_dir: str | Path) -> Path:
    """Write ``interrater.html`` into an interrater folder; return its path."""
    run_dir = Path(run_dir)
    summary = read_summary(run_dir, ("interrater",))
    figure = run_dir / "localization.png"
    image = (f"<img alt='localization agreement per characteristic' src='data:image/png;base64,"
             f"{base64.b64encode(figure.read_bytes()).decode()}'>" if figure.is_file() else "")
    body = (f"<h1>dermx rater agreement</h1>{image}{markdown_to_html(markdown_tables(summary))}")
    path = run_dir / PAGE
    path.write_text(f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>dermx rater agreement"
                    f"</title><style>{_STYLE}</style></head><body>{body}</body></html>", encoding="utf-8")
    return path
