"""``dermx report RUN_DIR``: the HTML report of a benchmark run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dermx.cli_common import fail, guarded


@guarded
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="Benchmark run folder (summary.json, examples.npz).")],
) -> None:
    """Write report.html (self-contained) and the CSV tables into RUN_DIR."""
    from rich.console import Console

    from dermx.report.html import render_report

    if not (run_dir / "summary.json").is_file():
        fail(f"{run_dir}: no summary.json (run `dermx evaluate` first)")
    Console().print(f"report: {render_report(run_dir).resolve()}")


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
