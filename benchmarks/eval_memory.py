"""Peak memory of ``dermx evaluate`` (the benchmark, no leaderboard) as the number of images grows.

For each size N of ``--sizes`` the script makes (once; kept under ``--data-root``, never committed) a
synthetic DermXDB of N images with ``dermx synth --n-images N --image-size 64`` and scores one model on
it, an untrained ``tiny`` network at 32 × 32 px (random weights, written by a child process:
``--prepare``), as its own process:

    python -m dermx evaluate --data D --images D/images --candidate tiny=CKPT --out OUT \\
        --allow-overlap --no-report [--no-agreement]

and reads that process's peak resident memory (``ru_maxrss`` from :func:`os.wait4`, through
:func:`predict_memory.peak_rss`; the parent imports neither torch nor dermx, so the figure is the
child's own). The goal (issue 29): the peak stays flat as N grows; per-image tables may grow, maps held
for every image may not. ``--agreement`` also scores the raters' ceiling (off by default: it is not
the model's pass; see BENCHMARKS.md for its cost).

    python benchmarks/eval_memory.py [--sizes 188,1500,6000] [--data-root runs/scale-data] [--agreement]
                                     [--stages] [--json FILE]

``--stages`` finds where the memory goes: the same command runs in a child that wraps the evaluation's
stages (:data:`STAGES`) and samples its own resident memory every 50 ms; the table gives each stage's
resident memory on entry and exit of its first call, its largest while any call ran, the largest rise of
one call over its own entry (``rise MB``: what the stage adds) and the number of calls (an inner stage
is also counted in its outer one). The sampling thread costs little; the figures are RSS, so freed
memory the allocator keeps is still counted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from predict_memory import REPO, peak_rss

SRC = REPO / "src"


def prepare(checkpoint: Path) -> None:
    """Write the untrained ``tiny`` checkpoint at 32 × 32 px (run in a child: the parent stays lean)."""
    sys.path.insert(0, str(SRC))
    import torch

    from dermx.models import build_model, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(build_model("tiny", pretrained=False, input_size=(32, 32)), checkpoint)


#: The stages ``--stages`` wraps: (module, function); each is looked up where its caller finds it.
STAGES: tuple[tuple[str, str], ...] = (
    ("dermx.data", "load_dermxdb"), ("dermx.evaluate.pipeline", "run_evaluation"),
    ("dermx.evaluate.pipeline", "load_candidates"),
    ("dermx.evaluate.pipeline", "run_benchmark"), ("dermx.evaluate.benchmark.run", "_tables"),
    ("dermx.evaluate.benchmark.run", "_ceiling"), ("dermx.evaluate.benchmark.run", "rater_answers"),
    ("dermx.evaluate.benchmark.run", "_agreement"), ("dermx.evaluate.benchmark.run", "_examples"),
    ("dermx.evaluate.benchmark.run", "summarize_benchmark"), ("dermx.evaluate.pipeline", "write_benchmark"),
    ("dermx.evaluate.pipeline", "build_manifest"),
    ("dermx.evaluate.benchmark.summary", "_model_sections"), ("dermx.evaluate.benchmark.summary", "group_summary"),
    ("dermx.evaluate.benchmark.summary", "trust_summary"), ("dermx.evaluate.benchmark.summary", "_shared"),
    ("dermx.evaluate.benchmark.summary", "_headline"), ("dermx.evaluate.benchmark.summary", "paired_difference"),
    *(("dermx.evaluate.benchmark.summary", name) for name in (
        "_diagnosis", "_identification", "_detection", "_localization", "_versus_baselines", "_ceiling",
        "_rater_answers", "_gap_closed")),
)


def rss_mb() -> float:
    """This process's resident memory now, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class StageMemory:
    """Resident memory of each wrapped stage: on entry and exit of its first call, the largest while any
    call ran, and the largest rise over a call's own entry (``rise MB``: what one call adds); ``calls``
    counts them."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, float]] = {}
        self.running: list[dict[str, Any]] = []
        self.done = False
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while not self.done:
            now = rss_mb()
            for call in list(self.running):
                call["max"] = max(call["max"], now)
            time.sleep(0.05)

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            now = rss_mb()
            row = self.rows.setdefault(name, {"entry MB": now, "max MB": now, "exit MB": math.nan,
                                              "rise MB": 0.0, "calls": 0})
            call = {"entry": now, "max": now}
            self.running.append(call)
            try:
                return function(*args, **kwargs)
            finally:
                self.running = [c for c in self.running if c is not call]
                end = rss_mb()
                call["max"] = max(call["max"], end)
                row["calls"] += 1
                row["max MB"] = max(row["max MB"], call["max"])
                row["rise MB"] = max(row["rise MB"], call["max"] - call["entry"])
                if math.isnan(row["exit MB"]):
                    row["exit MB"] = end

        return wrapped


def stages_child(report: Path, argv: list[str]) -> None:
    """Run ``dermx ARGV`` in this process with :data:`STAGES` wrapped; write their memory to ``report``."""
    import importlib

    sys.path.insert(0, str(SRC))
    import dermx.evaluate.pipeline  # noqa: F401  (the modules the command imports)

    memory = StageMemory()
    for module_name, function in STAGES:
        module = importlib.import_module(module_name)
        setattr(module, function, memory.wrap(function, getattr(module, function)))
    from dermx.cli import app

    try:
        app(argv, standalone_mode=False)
    finally:
        memory.done = True
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        memory.rows["whole process"] = {"entry MB": math.nan, "max MB": peak, "exit MB": rss_mb(), "rise MB": math.nan,
                                        "calls": 1}
        report.write_text(json.dumps(memory.rows, indent=2))


def dataset(root: Path, n_images: int, image_size: int) -> Path:
    """The synthetic DermXDB of ``n_images`` under ``root`` (generated when missing)."""
    folder = root / f"synth_{n_images}_{image_size}px"
    if not (folder / "metadata.csv").is_file():
        subprocess.run([sys.executable, "-m", "dermx", "synth", "--out", str(folder), "--n-images", str(n_images),
                        "--image-size", str(image_size), "--seed", "0"], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1"})
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--sizes", default="188,1500,6000", help="comma-separated numbers of images")
    parser.add_argument("--data-root", type=Path, default=Path("runs/scale-data"),
                        help="where the synthetic sets, the checkpoint and the runs go (runs/ is not tracked)")
    parser.add_argument("--image-size", type=int, default=64, help="synthetic image side (px)")
    parser.add_argument("--agreement", action="store_true", help="also score the raters' ceiling")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--stages", action="store_true", help="also each stage's memory (module docstring)")
    parser.add_argument("--prepare", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--stages-child", type=Path, default=None, help=argparse.SUPPRESS)
    options, rest = parser.parse_known_args()
    if options.prepare is not None:
        prepare(options.prepare)
        return
    if options.stages_child is not None:
        stages_child(options.stages_child, rest)
        return

    root = options.data_root
    root.mkdir(parents=True, exist_ok=True)
    checkpoint = root / "ckpt_tiny32"
    if not (checkpoint / "config.json").is_file():
        subprocess.run([sys.executable, __file__, "--prepare", str(checkpoint)], check=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    results = []
    for n_images in [int(s) for s in options.sizes.split(",")]:
        data = dataset(root, n_images, options.image_size)
        out = root / f"eval_{n_images}{'_agreement' if options.agreement else ''}"
        args = ["evaluate", "--data", str(data), "--images", str(data / "images"), "--candidate",
                f"tiny={checkpoint}", "--out", str(out), "--allow-overlap", "--no-report",
                "--agreement" if options.agreement else "--no-agreement"]
        row: dict[str, Any] = {"images": n_images, "agreement": options.agreement, **peak_rss(SRC, args)}
        if options.stages:
            report = out.with_name(out.name + "_stages.json")
            subprocess.run([sys.executable, __file__, "--stages-child", str(report), *args], check=True,
                           stdout=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            row["stages"] = json.loads(report.read_text())
        results.append(row)
        print(json.dumps(row), flush=True)
    print(f"\nload average at the end: {Path('/proc/loadavg').read_text().split()[:3]}")
    print(f"{'images':>7} {'agreement':>9} {'peak RSS GB':>12} {'seconds':>8} exit")
    for row in results:
        print(f"{row['images']:>7} {'yes' if row['agreement'] else 'no':>9} {row['peak_rss_gb']:>12.3f} "
              f"{row['seconds']:>8.1f} {row['exit']}")
    if options.stages:
        print(f"\n{'images':>7} {'stage':<22} {'entry MB':>9} {'max MB':>9} {'exit MB':>9} {'rise MB':>9} calls")
        for row in results:
            for name, memory in row["stages"].items():
                print(f"{row['images']:>7} {name:<22} " + " ".join(f"{memory[k]:>9.0f}" for k in (
                    "entry MB", "max MB", "exit MB", "rise MB")) + f" {memory['calls']:>5}")
    if options.json:
        options.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
