"""``dermx demo``: synthetic data → DermX and DermX+ → explanations → benchmark → report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dermx.cli_common import guarded, option, renamed


@guarded
def demo_command(
    out: Annotated[Path | None, option("--out")] = None,
    n_images: Annotated[int | None, option("--n-images")] = None,
    epochs: Annotated[int | None, option("--epochs")] = None,
    seed: Annotated[int, option("--seed")] = 0,
    quick: Annotated[bool, typer.Option("--quick", help="A tiny run (< 60 s) to check the installation.")] = False,
) -> None:
    """Run the whole pipeline on synthetic data with a watermark shortcut; print the report's path."""
    from rich.console import Console

    from dermx.demo.checks import demo_checks
    from dermx.demo.pipeline import DemoConfig, run_demo
    from dermx.report.terminal import headline_table

    changes = {"out": out, "images": n_images, "epochs": epochs, "seed": seed}
    config = DemoConfig.recipe("quick" if quick else "demo", **changes)
    console = Console()
    result = run_demo(config, console)
    console.print(headline_table(result.summary))
    if not quick:  # the quick run trains one epoch: its maps are not expected to show anything
        for check in demo_checks(result.summary):
            mark = "[green]✓[/green]" if check.passed else "[red]✗[/red]"
            console.print(f"{mark} {check.name}: {check.detail}")
    console.print("stage times: " + ", ".join(f"{k} {v:.0f} s" for k, v in result.timings.items()))
    console.print(f"report: [bold]{result.report.resolve()}[/bold]")


def register(app: typer.Typer) -> None:
    app.command("demo", cls=renamed({"--images": "--n-images"}))(demo_command)
