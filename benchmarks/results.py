"""Shared output of the benchmark scripts: a two-column rich table, a verdict line, optional JSON."""

from __future__ import annotations

import json
import resource
from pathlib import Path

from rich.console import Console
from rich.table import Table


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(console: Console, title: str, results: dict[str, float | int], verdict: str, json_path: Path | None) -> None:
    """Print ``results`` as a table and ``verdict`` below it; write them to ``json_path`` if given."""
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in results.items():
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(table)
    console.print(verdict)
    if json_path is not None:
        json_path.write_text(json.dumps(results, indent=2))
