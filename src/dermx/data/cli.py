"""``dermx data ...``: inspect a DermXDB folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dermx.cli_common import guarded, option, renamed

data_app = typer.Typer(help="Inspect a DermXDB folder (the release, or a synthetic one).",
                       no_args_is_help=True)


@data_app.command("summary", cls=renamed({"--json": "--json-file"}))
@guarded
def summary_command(
    data: Annotated[Path, option("--data")],
    json_out: Annotated[Path | None, typer.Option(
        "--json-file", dir_okay=False, help="Also write the counts and the load report to this JSON file.")] = None,
    strict: Annotated[bool, typer.Option(help="Stop at the first problem instead of reporting all.")] = False,
) -> None:
    """Print the dataset's counts as tables, and its load report."""
    from rich.console import Console
    from rich.table import Table

    from dermx.data.dataset import load_dermxdb
    from dermx.data.summary import dataset_summary

    console = Console()
    with console.status(f"reading {data}"):
        db = load_dermxdb(data, strict=strict)
    counts = dataset_summary(db)
    totals = Table(title=f"DermXDB at {data}")
    totals.add_column("count")
    totals.add_column("value", justify="right")
    for key, value in counts.items():
        if isinstance(value, int):
            totals.add_row(key.replace("_", " "), f"{value:,}")
    console.print(totals)
    for key, value in counts.items():
        if isinstance(value, dict) and value:
            table = Table(title=key.replace("_", " "))
            table.add_column("name")
            if all(isinstance(v, dict) for v in value.values()):
                columns = list(next(iter(value.values())))
                for column in columns:
                    table.add_column(column, justify="right")
                for name, row in value.items():
                    table.add_row(name, *(f"{row[c]:,}" for c in columns))
            else:
                table.add_column("count", justify="right")
                for name, count in value.items():
                    table.add_row(name, f"{count:,}")
            console.print(table)
    console.print(str(db.report))
    if json_out is not None:
        from dermx.jsonio import write_json

        json_out.parent.mkdir(parents=True, exist_ok=True)
        report = [{"file": str(i.path), "problem": i.problem} for i in db.report.issues]
        write_json(json_out, {**counts, "load_report": report})
        console.print(f"wrote {json_out}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
