"""The counterfactual shortcut test (:mod:`dermx.evaluate.shortcut`) on finished demo run folders.

    python benchmarks/shortcut_test.py RUN_DIR [RUN_DIR ...] [--n-boot N]

Each RUN_DIR is a ``dermx demo`` (or ``benchmarks/demo_time.py``) output with ``data/`` and
``models/dermx``, ``models/dermx+``. Prints, per model: the other classes' test images stamped with the
watermark, the share whose diagnosis flips to the shortcut class, Δp of that class, and on the flipped
images the energy ratio of its map on the logo (energy share / area share), with 95 % CIs; then the
ratio on the naturally watermarked images of the class from the run's own ``summary.json``. The stamps'
seed and the bootstrap resamples are the run's own (its ``manifest.json``; 0 and 1000 for runs without
one), so a run of the current demo reproduces its ``shortcut_test`` figures exactly.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dermx.data import load_dermxdb
from dermx.evaluate.benchmark.shortcut import stamp_test
from dermx.evaluate.candidates import load_candidates

MODELS = (("DermX", "dermx"), ("DermX+", "dermx+"))


def _ci(estimate: dict[str, float] | None, fmt: str = "{:.2f}") -> str:
    if not estimate:
        return "–"
    return f"{fmt.format(estimate['mean'])} [{fmt.format(estimate['low'])}, {fmt.format(estimate['high'])}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--n-boot", type=int, default=None, help="bootstrap resamples (default: the run's)")
    args = parser.parse_args()
    table = Table(title="counterfactual shortcut test")
    for column in ("run", "model", "stamped images", "flip rate", "Δp", "map energy / area (flipped)",
                   "natural images"):
        table.add_column(column)
    for run in args.runs:
        db = load_dermxdb(run / "data", image_dir=run / "data" / "images", check_mask_sizes=False)
        candidates = [c for name, folder in MODELS for c in load_candidates(name, run / "models" / folder, db)]
        manifest = run / "manifest.json"
        benchmark = json.loads(manifest.read_text())["config"].get("benchmark", {}) if manifest.is_file() else {}
        result = stamp_test(db, candidates, seed=benchmark.get("seed", 0),
                            n_boot=args.n_boot or benchmark.get("n_boot", 1000))
        if result is None:
            raise SystemExit(f"{run}: its data set has no shortcut class")
        natural = json.loads((run / "summary.json").read_text())["shortcut"]
        for name, entry in result["models"].items():
            own = natural["models"][name][natural["class"]]
            ratio = own["watermark"]["mean"] / own["area_watermark"] if own["area_watermark"] else float("nan")
            table.add_row(run.name, name, str(entry["n"]), _ci(entry["flip_rate"], "{:.0%}"), _ci(entry["delta_p"]),
                          _ci(entry["energy_ratio"], "{:.1f}×"), f"{ratio:.1f}×")
    Console().print(table)


if __name__ == "__main__":
    main()
