"""The README's own-data ``dermx train`` on a small synthetic set: the defaults against ``--recipe small-data``.

    python benchmarks/train_small_data.py [--out DIR] [--n-images 240] [--seed 1] [--runs paper,small-data]
                                          [--json FILE]

What a new user does, offline, from the README: ``dermx synth`` writes a small DermXDB-format set, its
images are sorted into one folder per class (as the README's shell loop does), and
``dermx train --images my_classes --kind dx-only --no-pretrained [--recipe R] --out ...`` runs as a
subprocess, timed by the wall clock. ``paper`` is the defaults (the papers' fine-tuning values, from
random weights here since nothing can be downloaded), ``small-data`` the recipe. The table gives per
run the epochs, minutes, the best validation diagnosis macro-F1 of any epoch and that of the exported
epoch (selected on validation loss), read from the run's ``logs/metrics.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from dermx.data.synth import generate


def class_folders(synth: Path, out: Path) -> Path:
    """``out/<diagnosis>/<image>``, from the synthetic set's ``metadata.csv`` (as the README's loop)."""
    with (synth / "metadata.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter=";"):
            folder = out / row["diagnosis"]
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(synth / "images" / row["current_filename"], folder)
    return out


def train(images: Path, out: Path, recipe: str) -> dict[str, Any]:
    """One README ``dermx train`` run; its wall time and validation figures."""
    command = [sys.executable, "-m", "dermx", "train", "--images", str(images), "--kind", "dx-only",
               "--no-pretrained", "--no-progress", "--out", str(out)]
    if recipe != "paper":
        command += ["--recipe", recipe]
    start = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    minutes = (time.perf_counter() - start) / 60
    log = pd.read_csv(out / "logs" / "metrics.csv")
    per_epoch = log.dropna(subset=["val/loss"]).groupby("epoch")[["val/loss", "val/dx_f1"]].last()
    exported = per_epoch["val/loss"].idxmin()
    return {"recipe": recipe, "command": " ".join(command[1:]), "epochs": len(per_epoch),
            "minutes": round(minutes, 2), "best_val_dx_f1": float(per_epoch["val/dx_f1"].max()),
            "exported_epoch": int(exported) + 1, "exported_val_dx_f1": float(per_epoch.loc[exported, "val/dx_f1"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/small-data-bench"))
    parser.add_argument("--n-images", type=int, default=240)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", default="paper,small-data", help="comma-separated recipes to train with")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    synth = args.out / "synth"
    if not (synth / "metadata.csv").is_file():
        generate(synth, n_images=args.n_images, seed=args.seed, progress=False)
    images = args.out / "my_classes"
    if not images.is_dir():
        class_folders(synth, images)
    results = [train(images, args.out / recipe, recipe) for recipe in args.runs.split(",")]
    table = Table(title=f"dermx train on {args.n_images} synthetic images (seed {args.seed}), from random weights")
    for column in ("recipe", "epochs", "minutes", "best val dx F1", "exported epoch", "its val dx F1"):
        table.add_column(column)
    for r in results:
        table.add_row(r["recipe"], str(r["epochs"]), f"{r['minutes']:.1f}", f"{r['best_val_dx_f1']:.3f}",
                      str(r["exported_epoch"]), f"{r['exported_val_dx_f1']:.3f}")
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
