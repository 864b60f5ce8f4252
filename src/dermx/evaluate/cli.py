"""``dermx interrater`` (how much the dermatologists agree) and ``dermx evaluate`` (models against them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dermx.cli_common import SizeArg, guarded, option, parse_input_size, renamed


@guarded
def interrater_command(
    data: Annotated[Path, option("--data")],
    out: Annotated[Path, option("--out")],
    raters: Annotated[str | None, option("--raters")] = None,
    mask_size: Annotated[SizeArg, typer.Option(
        "--mask-size", parser=parse_input_size, metavar="N|HxW",
        help="Compare masks resized to N or HxW (height x width); default: each image's native size.")] = None,
    intra: Annotated[bool, typer.Option(help="Also score the repeat pass against the first.")] = True,
) -> None:
    """Rater agreement: diagnosis, identification and localization (pairwise and leave-one-out)."""
    from rich.console import Console
    from rich.markdown import Markdown

    from dermx.data.dataset import load_dermxdb
    from dermx.evaluate.agreement.interrater import rater_agreement, write_agreement
    from dermx.progress import track
    from dermx.runs.interrater import markdown_tables

    console = Console()
    db = load_dermxdb(data, check_mask_sizes=False)
    annotators = db.select_annotators([r.strip() for r in raters.split(",")] if raters else "first")
    if not db.report.ok:
        console.print(str(db.report))
    if intra and not db.annotators("repeat"):
        console.print("no repeat-pass files (labeller<N>2_*.json): intra-rater agreement has no pairs")
    result = rater_agreement(
        db, annotators=annotators, size=mask_size, intra=intra,
        progress=lambda stems, label: track(stems, description=label, console=console))
    console.print(Markdown(markdown_tables(result.summary)))
    for path in write_agreement(result, out):
        console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    from dermx.evaluate import benchmark_cli, leaderboard_cli

    app.command("interrater", cls=renamed({"--size": "--mask-size"}))(interrater_command)
    benchmark_cli.register(app)
    leaderboard_cli.register(app)
