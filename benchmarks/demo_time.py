"""Wall time of the full ``dermx demo`` and of each stage, and its headline checks, for one or more seeds.

    python benchmarks/demo_time.py [--out DIR] [--seeds 0,1,2] [--recipe demo|long|quick] [--n-images N]
                                   [--epochs E] [--json FILE]

Each seed is one whole demo (synthetic data, both models, benchmark, report) in ``DIR/seed-<k>``. The
table lists, per seed, the stage times, DermX and DermX+ characteristic-map Dice and pointing game next
to the best baseline map's, the paired DermX+ − DermX Dice difference, diagnosis F1 and the shortcut
ratio, then every check of :mod:`dermx.demo.checks` (the baseline each model is compared with is the
best of the image-independent maps, scored in the same run on the same pairs).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from dermx.demo import DemoConfig, demo_checks, run_demo
from dermx.demo.pipeline import RECIPES


def _ci(estimate: dict[str, Any] | None) -> str:
    """``mean [low, high]`` for an estimate with a CI, ``mean ± sd`` for rater figures, ``–`` if undefined."""
    if not estimate or estimate.get("mean") is None:
        return "–"
    if estimate.get("low") is not None:
        return f"{estimate['mean']:.3f} [{estimate['low']:.3f}, {estimate['high']:.3f}]"
    if estimate.get("sd") is not None:
        return f"{estimate['mean']:.3f} ± {estimate['sd']:.3f}"
    return f"{estimate['mean']:.3f}"


def _headline(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["source"]: row for row in summary["headline"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/demo-bench"))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--n-images", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="demo",
                        help="the demo's recipe, the longer one or the installation check (RECIPES)")
    parser.add_argument("--json", type=Path, default=None, help="write timings, headline and checks as JSON")
    parser.add_argument("--tables-only", action="store_true",
                        help="print the tables of runs already in --out (their summary.json; no timings)")
    args = parser.parse_args()
    console = Console()
    records = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        if args.tables_only:
            summary = json.loads((args.out / f"seed-{seed}" / "summary.json").read_text(encoding="utf-8"))
            records.append({"seed": seed, "total": math.nan, "stages": {}, "headline": summary["headline"],
                            "paired": summary["paired"], "checks": [vars(c) for c in demo_checks(summary)]})
            continue
        changes = {"out": args.out / f"seed-{seed}", "images": args.n_images, "epochs": args.epochs, "seed": seed}
        config = DemoConfig.recipe(args.recipe, **changes)
        start = time.perf_counter()
        result = run_demo(config, console)
        records.append({"seed": seed, "total": time.perf_counter() - start, "stages": result.timings,
                        "headline": result.summary["headline"], "paired": result.summary["paired"],
                        "checks": [vars(c) for c in demo_checks(result.summary)]})
    if not args.tables_only:
        times = Table(title="dermx demo: wall time per stage (s)")
        for column in ("seed", *records[0]["stages"], "total"):
            times.add_column(column, justify="right")
        for r in records:
            times.add_row(str(r["seed"]), *(f"{v:.0f}" for v in r["stages"].values()), f"{r['total']:.0f}")
        console.print(times)
    scores = Table(title="Characteristic maps against the fused experts (95 % cluster-bootstrap CI over patients; "
                         "raters: ± SD over rows)")
    for column in ("seed", "source", "char Dice", "pointing", "dx F1", "Dice vs drawn truth"):
        scores.add_column(column)
    for r in records:
        for row in r["headline"]:
            if row["source"].startswith("raters,") and "conditional" in row["source"]:
                continue
            scores.add_row(str(r["seed"]), row["source"], _ci(row.get("char_dice")), _ci(row.get("pointing")),
                           _ci(row.get("diagnosis_f1")), _ci(row.get("char_dice_drawn")))
    console.print(scores)
    for r in records:
        for check in r["checks"]:
            mark = "PASS" if check["passed"] else "FAIL"
            console.print(f"seed {r['seed']} {mark} {check['name']}: {check['detail']}")
    if args.json:
        args.json.write_text(json.dumps(records, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
