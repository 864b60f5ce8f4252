"""Time the synthetic DermXDB generator: 300 images, 8 raters (goal: ≤ 30 s on 2 cores).

Usage: ``python benchmarks/synth_speed.py [--images N] [--workers W]``; prints seconds and images/s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from dermx.data.synth import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-images", type=int, default=300)
    parser.add_argument("--n-raters", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    args = parser.parse_args()
    for workers in dict.fromkeys(args.workers):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            summary = generate(Path(tmp) / "synth", n_images=args.n_images, n_raters=args.n_raters,
                               workers=workers, progress=False)
            seconds = time.perf_counter() - start
        print(f"workers={workers}: {summary.n_images} images, {summary.n_ratings + summary.n_repeat_ratings} "
              f"ratings, {summary.n_masks} masks in {seconds:.1f} s ({summary.n_images / seconds:.1f} images/s)")


if __name__ == "__main__":
    main()
