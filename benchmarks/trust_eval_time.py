"""What trust per skin tone adds to ``dermx evaluate``: the benchmark of a demo's two models timed with the
code before it and with it, side by side, in alternating fresh processes.

Each run loads the data and the two checkpoints (``RUN_DIR/models/{dermx,dermx+}/model``), explains and
scores the test images and writes the run folder: ``dermx evaluate --no-report --no-agreement`` is this
plus the rater agreement (unchanged by trust), as a library call. With the new code each model is also
given a calibration, so that every calibrated figure (temperature, sets, abstention) is computed: it is
fitted on made-up validation logits (600 rows, three skin tones, :func:`made_up_calibration`), never on
the demo's images; its figures mean nothing and are not reported, only the time counts.

Usage: ``python benchmarks/trust_eval_time.py --demo RUN_DIR --baseline GIT_REF [--repeats 2]
[--n-boot 500] [--seed 11] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def made_up_calibration() -> object:
    """A calibration fitted on random logits whose true class gets +2 (light, medium and dark skin, 200 each)."""
    import numpy as np

    from dermx.trust.fitted import fit_model_calibration

    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 600)
    z = rng.normal(0, 1.5, (600, 6))
    z[np.arange(600), y] += 2.0
    return fit_model_calibration(z, y, ["light", "medium", "dark"] * 200)


def readable_copy(checkpoint: Path, target: Path) -> Path:
    """``checkpoint`` copied to ``target`` with only the config fields the dermx on ``sys.path`` knows (the
    code before trust refuses the ``calibration`` and later fields: what it would do without them is
    what it did)."""
    from dermx.models import ModelConfig

    target.mkdir(parents=True, exist_ok=True)
    for file in checkpoint.iterdir():
        shutil.copy(file, target / file.name)
    config = json.loads((checkpoint / "config.json").read_text())
    known = set(ModelConfig.__dataclass_fields__) | {"format", "dermx_version"}
    (target / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k in known}))
    return target


def child(demo: Path, out: Path, n_boot: int, seed: int) -> dict[str, float]:
    """One timed benchmark in this process (whatever dermx is on ``sys.path``)."""
    start = time.perf_counter()
    from dermx.data import load_dermxdb
    from dermx.evaluate.benchmark.config import BenchmarkConfig
    from dermx.evaluate.benchmark.run import run_benchmark, write_benchmark
    from dermx.evaluate.candidates import Candidate, load_candidates

    data = demo / "data"
    db = load_dermxdb(data, image_dir=data / "images")
    models = out.parent / f"models-{out.name}"
    candidates = [c for name, folder in (("DermX", "dermx"), ("DermX+", "dermx+"))
                  for c in load_candidates(name, readable_copy(demo / "models" / folder / "model",
                                                               models / folder), db)]
    if "calibration" in Candidate.__dataclass_fields__:
        calibration = made_up_calibration()
        candidates = [dataclasses.replace(c, calibration=calibration) for c in candidates]
    loaded = time.perf_counter()
    result = run_benchmark(db, candidates, BenchmarkConfig(n_boot=n_boot, seed=seed, agreement=False), out=out)
    write_benchmark(result, out)
    end = time.perf_counter()
    return {"total": end - start, "benchmark": end - loaded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, required=True)
    parser.add_argument("--baseline", required=True, help="git ref of the code before (e.g. main)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--n-boot", type=int, default=500)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.demo, args.child, args.n_boot, args.seed)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline, "src"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        times: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
        for repeat in range(args.repeats):
            for label, source in (("before", base / "src"), ("after", REPO / "src")):
                env = {**os.environ, "PYTHONPATH": str(source), "HF_HUB_OFFLINE": "1"}
                out = Path(tmp) / f"{label}-{repeat}"
                done = subprocess.run([sys.executable, __file__, "--demo", str(args.demo), "--baseline", args.baseline,
                                       "--n-boot", str(args.n_boot), "--seed", str(args.seed), "--child", str(out)],
                                      env=env, check=True, capture_output=True, text=True)
                times[label].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(label, repeat, times[label][-1], flush=True)
    best = {label: min(t["total"] for t in runs) for label, runs in times.items()}
    median = {label: statistics.median(t["total"] for t in runs) for label, runs in times.items()}
    print(f"best of {args.repeats}: before {best['before']:.1f} s, after {best['after']:.1f} s, "
          f"ratio {best['after'] / best['before']:.3f}; medians {median['before']:.1f} / {median['after']:.1f} s")
    if args.json:
        args.json.write_text(json.dumps({"times": times, "best": best, "median": median}, indent=1))


if __name__ == "__main__":
    main()
