"""The README's own-data try-out, run as written: the defaults against ``--recipe small-data``.

    python benchmarks/train_small_data.py [--runs small-data,paper] [--paper-epochs N] [--json FILE]

The README's shell block ("To try it first without data of your own") is taken from this checkout's
README.md and run by bash as it stands, with this interpreter's folder first on ``PATH`` (what
``. .venv/bin/activate``, its first line, does) and nothing else set: ``dermx synth`` writes 240
synthetic images, a shell loop sorts them into one folder per class, and ``dermx train --images
my_classes/ --kind dx-only --no-pretrained --recipe small-data`` trains from random weights in a fresh
temporary folder (the block's ``cd "$(mktemp -d)"``). ``small-data`` is that block; ``paper`` is the same
block without ``--recipe small-data``: the defaults, the papers' fine-tuning values (120 epochs of
ResNet-18; ``--paper-epochs N`` stops them after N, for a shared machine, and the row says so). The wall
time covers the whole block (synthesis, copying, training); bash's ``time`` gives the training part's
wall and CPU (user + system) time, the latter less dependent on other jobs. Figures per run: epochs,
minutes, the best validation diagnosis macro-F1 of any epoch, and the exported epoch (selected on
validation loss) with its F1, from the run's ``logs/metrics.csv``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

README = Path(__file__).resolve().parents[1] / "README.md"
#: The sentence the try-out block follows in README.md.
ANCHOR = "To try it first without data of your own"
RECIPE_FLAG = " --recipe small-data"


def readme_block() -> str:
    """The README's try-out shell block, as written."""
    text = README.read_text(encoding="utf-8")
    after = text[text.index(ANCHOR):]
    block = after[after.index("```bash\n") + len("```bash\n"):]
    return block[:block.index("```")]


def _minutes(line: str) -> float:
    """Minutes of a line of bash's ``time`` (``real\t1m2.345s``)."""
    value = line.split()[1]
    return int(value.split("m")[0]) + float(value.split("m")[1].rstrip("s")) / 60


def run_block(script: str, recipe: str, paper_epochs: int | None = None) -> dict[str, Any]:
    """Run the block (for ``paper``, without the recipe flag, and stopped after ``paper_epochs`` if given)
    in bash; its wall time and figures."""
    if recipe == "paper":
        script = script.replace(RECIPE_FLAG, f" --epochs {paper_epochs}" if paper_epochs else "")
    elif recipe != "small-data":
        raise ValueError(f"unknown run {recipe!r}: small-data (the README's block) or paper (without the recipe)")
    lines = script.strip().splitlines()
    assert lines[0].startswith(". .venv/bin/activate"), lines[0]
    train = next(i for i, line in enumerate(lines) if line.startswith("dermx train"))
    lines[train] = f"time {lines[train]}"  # bash's time: the training part alone, on stderr
    body = "\n".join([*lines[1:], 'echo "folder: $PWD"'])
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    start = time.perf_counter()
    done = subprocess.run(["bash", "-e", "-c", body], env=env, capture_output=True, text=True, check=False)
    minutes = (time.perf_counter() - start) / 60
    if done.returncode != 0:
        raise RuntimeError(f"the README block failed ({recipe}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    folder = Path(done.stdout.strip().splitlines()[-1].removeprefix("folder: "))
    timed = {line.split()[0]: _minutes(line) for line in done.stderr.splitlines()
             if line.startswith(("real\t", "user\t", "sys\t"))}
    log = pd.read_csv(folder / "runs" / "mine" / "logs" / "metrics.csv")
    per_epoch = log.dropna(subset=["val/loss"]).groupby("epoch")[["val/loss", "val/dx_f1"]].last()
    exported = per_epoch["val/loss"].idxmin()
    return {"recipe": recipe, "train_command": lines[train].removeprefix("time "), "folder": str(folder),
            "epochs": len(per_epoch), "minutes_block": round(minutes, 1), "minutes_train": round(timed["real"], 1),
            "cpu_minutes_train": round(timed["user"] + timed["sys"], 1),
            "best_val_dx_f1": round(float(per_epoch["val/dx_f1"].max()), 3),
            "exported_epoch": int(exported) + 1,
            "exported_val_dx_f1": round(float(per_epoch.loc[exported, "val/dx_f1"]), 3),
            "val_dx_f1_per_epoch": [round(float(v), 3) for v in per_epoch["val/dx_f1"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="small-data,paper", help="small-data (the README's block) and/or paper")
    parser.add_argument("--paper-epochs", type=int, default=None,
                        help="stop the defaults' run after N of its 120 epochs (a shared machine)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures (and per-epoch F1) as JSON")
    args = parser.parse_args()
    script = readme_block()
    results = []
    for recipe in args.runs.split(","):
        results.append(run_block(script, recipe, args.paper_epochs))
        if args.json:  # after each run: the paper run takes hours on a shared 2-core machine
            args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    table = Table(title="The README's own-data try-out (240 synthetic images), from random weights")
    for column in ("run", "epochs", "minutes (block)", "minutes (train)", "CPU minutes (train)", "best val dx F1",
                   "exported epoch", "its val dx F1"):
        table.add_column(column)
    for r in results:
        table.add_row(r["recipe"], str(r["epochs"]), f"{r['minutes_block']:.1f}", f"{r['minutes_train']:.1f}",
                      f"{r['cpu_minutes_train']:.1f}", f"{r['best_val_dx_f1']:.3f}", str(r["exported_epoch"]),
                      f"{r['exported_val_dx_f1']:.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()
