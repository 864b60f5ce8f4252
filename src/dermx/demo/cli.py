"""``dermx demo``: synthetic data → DermX and DermX+ → explanations → benchmark → report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dermx.cli_common import fail, guarded, option, renamed


@guarded
def demo_command(
    out: Annotated[Path | None, option("--out")] = None,
    n_images: Annotated[int | None, option("--n-images")] = None,
    epochs: Annotated[int | None, option("--epochs")] = None,
    seed: Annotated[int, option("--seed")] = 0,
    quick: Annotated[bool, typer.Option("--quick", help="A tiny run (< 60 s) to check the installation.")] = False,
    strict: Annotated[bool, typer.Option("--strict-checks", help="Exit with 1 when a check fails.")] = False,
    held_out_raters: Annotated[bool, typer.Option(
        "--held-out-raters", help="Train on raters 1-4's labels and maps, score against raters 5-8 (whose style "
                                  "DermX+ never learned).")] = False,
    interventions: Annotated[bool, option("--interventions")] = True,
    profiles: Annotated[str | None, option("--profiles", default="overlapping")] = None,
) -> None:
    """Run the whole pipeline on synthetic data with a watermark shortcut; print the report's path.

    The checks (each read from a confidence interval) are printed under the headline and stated in the
    report's verdict; with --strict-checks a failed check ends the command with exit code 1. The --quick run
    trains one epoch and checks nothing. Beside DermX and DermX+ the demo makes a concept-bottleneck model (cbm)
    from DermX's characteristics and measures every model's intervention curve; --no-interventions leaves both
    out. With --profiles distinct the synthetic characteristics name the class, so correcting them should fix a
    bottleneck's diagnosis.
    """
    from rich.console import Console

    from dermx.demo.pipeline import DemoConfig, run_demo
    from dermx.report.terminal import headline_table

    changes = {"out": out, "images": n_images, "epochs": epochs, "seed": seed,
               "held_out_raters": held_out_raters or None, "interventions": interventions, "profiles": profiles}
    config = DemoConfig.recipe("quick" if quick else "demo", **changes)
    console = Console()
    result = run_demo(config, console)
    console.print(headline_table(result.summary))
    for check in result.checks:
        mark = "[green]✓[/green]" if check.passed else "[red]✗[/red]"
        console.print(f"{mark} {check.name}: {check.detail}")
    console.print("stage times: " + ", ".join(f"{k} {v:.0f} s" for k, v in result.timings.items()))
    console.print(f"report: [bold]{result.report.resolve()}[/bold]")
    failed = [c.name for c in result.checks if not c.passed]
    if strict and failed:
        fail(f"{len(failed)} check(s) failed: {', '.join(failed)} (--strict-checks)")


def register(app: typer.Typer) -> None:
    app.command("demo", cls=renamed({"--images": "--n-images"}))(demo_command)
