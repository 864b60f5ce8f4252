"""``dermx report RUN_DIR``: the HTML report of a benchmark run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dermx.cli_common import guarded


@guarded
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="Benchmark run folder (summary.json, examples.npz) or "
                                                      "`dermx interrater` output folder.")],
) -> None:
    """Write report.html (self-contained) and the CSV tables into RUN_DIR; for a `dermx interrater`
    folder, write interrater.html."""
    from rich.console import Console

    from dermx.report.html import render_report
    from dermx.report.interrater_page import render_interrater
    from dermx.runs.summary import read_summary

    summary = read_summary(run_dir)
    render = render_interrater if summary["kind"] == "interrater" else render_report
    Console().print(f"report: {render(run_dir).resolve()}")


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
