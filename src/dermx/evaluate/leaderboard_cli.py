"""``dermx leaderboard RUN_DIR...``: show (and combine) the leaderboards of finished runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from dermx.cli_common import fail, guarded, option

#: Columns shown in the terminal (the CSV and JSON hold all of them, with CIs).
SHOWN: tuple[str, ...] = ("dice", "pointing", "deletion_auc", "insertion_auc", "road_morf", "mprt_spearman",
                          "max_sensitivity")


def print_leaderboard_problems(console: Any, excluded: Sequence[dict[str, str]],
                               undefined: Sequence[dict[str, str]]) -> None:
    """Print the cells left out of a leaderboard and the metrics undefined on every image of a row."""
    for entry in excluded:
        console.print(f"not in the leaderboard: {entry['model']} / {entry['method']}: {entry['reason']}",
                      highlight=False)
    for entry in undefined:
        console.print(f"{entry['model']} / {entry['method']} / {entry['metric']} {entry['reason']} (row kept, "
                      "not in leaderboard.csv)", highlight=False)


def _cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if value is None or not math.isfinite(value):
        return "-"
    low, high = row.get(f"{column}_low"), row.get(f"{column}_high")
    ci = f" [{low:.2f}, {high:.2f}]" if low is not None and high is not None else ""
    return f"{value:.3f}{ci}"


@guarded
def leaderboard_command(
    runs: Annotated[list[Path], typer.Argument(help="Run folders written by `dermx evaluate --methods ...`.")],
    out: Annotated[Path | None, option("--out")] = None,
) -> None:
    """The method x model leaderboard of one or more runs: agreement, faithfulness, sanity, robustness.

    With --out, the combined leaderboard.csv and leaderboard.json are written there (default: print only).
    """
    from rich.console import Console
    from rich.table import Table

    from dermx.runs.layout import RunFolderError
    from dermx.runs.leaderboard import read_leaderboard, write_leaderboard

    console = Console()
    rows: list[dict[str, Any]] = []
    excluded: list[dict[str, str]] = []
    undefined: list[dict[str, str]] = []
    directions: dict[str, str] = {}
    problems = []
    for run in runs:
        try:
            data = read_leaderboard(run)
        except (RunFolderError, OSError, ValueError) as error:
            problems.append(str(error))
            console.print(f"[red]skipped:[/red] {error}", highlight=False, soft_wrap=True)
            continue
        prefix = f"{run.name}/" if len(runs) > 1 else ""
        rows += [{**r, "model": prefix + r["model"]} for r in data["rows"]]
        excluded += [{**e, "model": prefix + e["model"]} for e in data.get("excluded", [])]
        undefined += [{**e, "model": prefix + e["model"]} for e in data.get("undefined", [])]
        directions.update(data.get("directions", {}))
    if not rows:
        fail("no leaderboard rows in " + ", ".join(map(str, runs)) + (f": {'; '.join(problems)}" if problems else ""))
    table = Table(title="method x model leaderboard (95 % CI)")
    table.add_column("model", no_wrap=True)  # the names stay whole; the numbers wrap
    table.add_column("method", no_wrap=True)
    for column in SHOWN:
        table.add_column(f"{column} {'↑' if directions.get(column) == 'higher' else '↓'}", justify="right")
    for row in rows:
        table.add_row(row["model"], row["method"], *(_cell(row, c) for c in SHOWN))
    console.print(table)
    print_leaderboard_problems(console, excluded, undefined)
    if out is not None:
        written = write_leaderboard(out, {"directions": directions, "rows": rows, "excluded": excluded,
                                          "undefined": undefined, "runs": [str(r) for r in runs]})
        console.print(f"wrote {written[0]}", highlight=False)
    if problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("leaderboard")(leaderboard_command)
