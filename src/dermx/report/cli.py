"""``dermx report RUN_DIR``: the HTML report of a benchmark run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dermx.cli_common import fail, guarded


@guarded
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="Benchmark run folder (summary.json, examples.npz) or "
                                                      "`dermx interrater` output folder.")],
) -> None:
    """Write report.html (self-contained) and the CSV tables into RUN_DIR; for a `dermx interrater`
    folder, write interrater.html."""
    import json

    from rich.console import Console

    from dermx.report.html import render_report
    from dermx.report.interrater_page import is_interrater, render_interrater

    if not (run_dir / "summary.json").is_file():
        fail(f"{run_dir}: no summary.json (run `dermx evaluate` or `dermx interrater` first)")
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    render = render_interrater if is_interrater(summary) else render_report
    Console().print(f"report: {render(run_dir).resolve()}")


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
