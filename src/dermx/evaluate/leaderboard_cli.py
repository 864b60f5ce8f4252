"""``dermx leaderboard RUN_DIR...`` (show and combine leaderboards) and the leaderboard step of
``dermx evaluate --methods ...`` (:func:`write_run_leaderboard`)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from dermx.cli_common import fail, guarded, option

#: Columns shown in the terminal (the CSV and JSON hold all of them, with CIs).
SHOWN: tuple[str, ...] = ("dice", "pointing", "deletion_auc", "insertion_auc", "road_morf", "mprt_spearman",
                          "max_sensitivity")


def parse_protocol(text: str) -> str:
    """``--protocol``: ``dermx`` (the benchmark's) or ``followup`` (Jalaboi et al. 2023)."""
    if text not in ("dermx", "followup"):
        raise typer.BadParameter(f"expected dermx or followup; got {text!r}")
    return text


def parse_image_count(text: str | int) -> int | None:
    """``--n-scorecam-images``: a positive count, or ``all`` (``None``: every test image)."""
    if str(text).strip().lower() == "all":
        return None
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise typer.BadParameter(f"expected a positive number of images or 'all'; got {text!r}")
    return count


def write_run_leaderboard(db: Any, models: Sequence[tuple[str, str]], methods: str, out: Path, *,
                          protocol: str = "dermx", n_images: int = 16, n_scorecam_images: int | None = 64,
                          steps: int = 8, n_boot: int = 1000, seed: int = 0, threshold: float = 0.5,
                          available: Sequence[str] | None = None, allow_overlap: bool = False,
                          aliases: dict[str, str] | None = None) -> list[Path]:
    """Score every (model, method) cell and write ``leaderboard.csv``/``.json`` into the run folder
    ``out``; problems of single cells are printed and the other cells still written
    (``n_scorecam_images``: :attr:`~dermx.evaluate.leaderboard.LeaderboardConfig.score_images`)."""
    from rich.console import Console

    from dermx.evaluate.leaderboard import LeaderboardConfig, run_leaderboard, write_leaderboard
    from dermx.progress import progress

    console = Console(stderr=True)
    config = LeaderboardConfig(protocol=protocol, n_images=n_images, score_images=n_scorecam_images,  # type: ignore[arg-type]
                               steps=steps, n_boot=n_boot, seed=seed, threshold=threshold)
    with progress(console, transient=True) as bar:
        def say(message: str) -> None:
            bar.console.print(f"leaderboard: {message}")

        board = run_leaderboard(db, models, methods, config, say=say, available=available,
                                allow_overlap=allow_overlap, aliases=aliases,
                                progress=lambda it, label, total: bar.track(it, total=total, description=label))
    written = write_leaderboard(board, out)
    for entry in board.excluded:
        console.print(f"[yellow]not in the leaderboard:[/yellow] {entry['model']} / {entry['method']}: "
                      f"{entry['reason']}")
    _print_undefined(console, board.undefined)
    return written


def _print_undefined(console: Any, undefined: Sequence[dict[str, str]]) -> None:
    for entry in undefined:
        console.print(f"{entry['model']} / {entry['method']} / {entry['metric']} {entry['reason']} (row kept, "
                      "not in leaderboard.csv)", highlight=False)


def _read(run: Path) -> dict[str, Any]:
    path = run / "leaderboard.json"
    if not path.is_file():
        hint = " (a run from before leaderboards: rerun `dermx evaluate ... --methods all`)" \
            if (run / "summary.json").is_file() else ""
        raise ValueError(f"{run}: no leaderboard.json{hint}")
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("version") != 1:
        raise ValueError(f"{path}: leaderboard format {data.get('version')!r}, expected 1")
    return data


def leaderboard_command(
    runs: Annotated[list[Path], typer.Argument(help="Run folders written by `dermx evaluate --methods ...`.")],
    out: Annotated[Path | None, option("--out")] = None,
) -> None:
    """The method x model leaderboard of one or more runs: agreement, faithfulness, sanity, robustness.

    With --out, the combined leaderboard.csv and leaderboard.json are written there (default: print only).
    """
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    from dermx.evaluate.leaderboard import DIRECTIONS
    from dermx.jsonio import write_json

    console = Console()
    rows: list[dict[str, Any]] = []
    excluded: list[dict[str, str]] = []
    undefined: list[dict[str, str]] = []
    problems = []
    for run in runs:
        try:
            data = _read(run)
        except (ValueError, OSError, json.JSONDecodeError) as error:
            problems.append(str(error))
            console.print(f"[red]skipped:[/red] {error}", highlight=False)
            continue
        prefix = f"{run.name}/" if len(runs) > 1 else ""
        rows += [{**r, "model": prefix + r["model"]} for r in data["rows"]]
        excluded += [{**e, "model": prefix + e["model"]} for e in data.get("excluded", [])]
        undefined += [{**e, "model": prefix + e["model"]} for e in data.get("undefined", [])]
    if not rows:
        fail("no leaderboard rows in " + ", ".join(map(str, runs)) + (f": {'; '.join(problems)}" if problems else ""))
    table = Table(title="method x model leaderboard (95 % CI over images)")
    table.add_column("model")
    table.add_column("method")
    for column in SHOWN:
        table.add_column(f"{column} {'↑' if DIRECTIONS[column] == 'higher' else '↓'}", justify="right")
    for row in rows:
        table.add_row(row["model"], row["method"], *(_cell(row, c) for c in SHOWN))
    console.print(table)
    for entry in excluded:
        console.print(f"not in the leaderboard: {entry['model']} / {entry['method']}: {entry['reason']}",
                      highlight=False)
    _print_undefined(console, undefined)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame([r for r in rows if all(v is not None for v in r.values())],
                             columns=list(dict.fromkeys(k for r in rows for k in r)))
        frame.to_csv(out / "leaderboard.csv", index=False)
        write_json(out / "leaderboard.json", {"version": 1, "directions": DIRECTIONS, "rows": rows,
                                              "excluded": excluded, "undefined": undefined,
                                              "runs": [str(r) for r in runs]})
        console.print(f"wrote {out / 'leaderboard.csv'}")
    if problems:
        raise typer.Exit(1)


def _cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if value is None or not math.isfinite(value):
        return "-"
    low, high = row.get(f"{column}_low"), row.get(f"{column}_high")
    ci = f" [{low:.2f}, {high:.2f}]" if low is not None and high is not None else ""
    return f"{value:.3f}{ci}"


def register(app: typer.Typer) -> None:
    app.command("leaderboard")(guarded(leaderboard_command))
