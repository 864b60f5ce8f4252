"""Wall time of the full ``dermx demo`` and of each stage.

    python benchmarks/demo_time.py [--out DIR] [--images N] [--epochs E] [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dermx.demo import DemoConfig, run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="write the timings as JSON")
    args = parser.parse_args()
    changes = {"out": args.out, "images": args.images, "epochs": args.epochs}
    config = DemoConfig.quick(**changes) if args.quick else DemoConfig(**{k: v for k, v in changes.items()
                                                                          if v is not None})
    console = Console()
    start = time.perf_counter()
    result = run_demo(config, console)
    total = time.perf_counter() - start
    table = Table(title=f"dermx demo: {config.images} images, {config.epochs} epochs")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for stage, seconds in result.timings.items():
        table.add_row(stage, f"{seconds:.1f}")
    table.add_row("total (wall)", f"{total:.1f}", style="bold")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps({"config": {"images": config.images, "epochs": config.epochs},
                                         "stages": result.timings, "total": total,
                                         "report": str(result.report)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
