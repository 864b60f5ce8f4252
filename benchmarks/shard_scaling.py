"""``dermx evaluate --methods all`` on the demo's models: one process against two (``--devices 2``).

    python benchmarks/shard_scaling.py --demo RUN_DIR [--models dermx,dermx+] [--json FILE] [-- EXTRA ...]

``RUN_DIR`` is a ``dermx demo`` run folder (``RUN_DIR/data``, ``RUN_DIR/models/<name>``). The same command
line runs three ways, one after the other, each in a fresh output folder: one process with the
machine's threads (the default), one process with one thread (``OMP_NUM_THREADS=1``), and two
processes with one thread each (``--devices 2 --strategy ddp``, gloo). Figures: wall time of the whole
command (start-up, loading, scoring, statistics, report), and the ratio of the two-process time to each
one-process time (the issue's goal: ≤ 0.6 × the one-process time, 2 cores). The two-process files are
compared with the one-thread run's, byte for byte (``manifest.json`` and ``report.html`` aside: they
record the command line and the run folder); differing files are named.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RUNS = {"one process, default threads": ({}, []),
        "one process, 1 thread": ({"OMP_NUM_THREADS": "1"}, []),
        "two processes, 1 thread each": ({"OMP_NUM_THREADS": "1"}, ["--devices", "2", "--strategy", "ddp"])}


def evaluate(args: list[str], env: dict[str, str]) -> float:
    """Wall seconds of ``python -m dermx evaluate ARGS`` (it must succeed)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dermx", "evaluate", *args], env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


#: Files that record the command line or the run folder, so differ between any two runs.
RECORDS = ("manifest.json", "report.html")


def differing_files(one: Path, two: Path) -> list[str]:
    """The files (``RECORDS`` aside) that are not byte-identical in both folders, or in only one."""
    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
                if p.is_file() and p.name not in RECORDS}
    a, b = files(one), files(two)
    return sorted(name for name in a.keys() | b.keys() if a.get(name) != b.get(name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, required=True, help="a dermx demo run folder")
    parser.add_argument("--models", default="dermx,dermx+", help="models of RUN_DIR/models (comma-separated)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("extra", nargs="*", help="more evaluate options (after --)")
    options = parser.parse_args()
    data = options.demo / "data"
    base = ["--data", str(data), "--images", str(data / "images"), "--methods", "all",
            *[a for m in options.models.split(",") for a in ("--candidate", f"{m}={options.demo / 'models' / m}")],
            *options.extra]
    work = Path(tempfile.mkdtemp(prefix="shard-scaling-"))
    seconds: dict[str, float] = {}
    folders: dict[str, Path] = {}
    try:
        for i, (name, (env, flags)) in enumerate(RUNS.items()):
            folders[name] = work / f"run{i}"
            seconds[name] = evaluate([*base, "--out", str(folders[name]), *flags], env)
            print(f"{name}: {seconds[name]:.1f} s", flush=True)
        differing = differing_files(folders["one process, 1 thread"], folders["two processes, 1 thread each"])
        n_files = sum(1 for p in folders["one process, 1 thread"].rglob("*") if p.is_file())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    two = seconds["two processes, 1 thread each"]
    table = Table(title=f"dermx evaluate --methods all, models {options.models} of {options.demo.name}")
    for column in ("run", "wall s", "two processes / this"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for name, value in seconds.items():
        table.add_row(name, f"{value:.1f}", f"{two / value:.2f}")
    console = Console()
    console.print(table)
    console.print(f"two-process files differing from the one-thread run's ({n_files} files, "
                  f"{', '.join(RECORDS)} aside): {', '.join(differing) or 'none'}; load average "
                  f"{os.getloadavg()[0]:.2f} at the end; {os.cpu_count()} cores")
    if options.json:
        figures: dict[str, Any] = {"seconds": seconds, "differing": differing, "models": options.models,
                                   "cores": os.cpu_count()}
        options.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
