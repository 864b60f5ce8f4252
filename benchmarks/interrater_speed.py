"""Rater-agreement localization table: the original per-pair approach against ours, side by side.

The per-pair baseline does what the original research code does: for every ordered rater pair
(a, b) of an image and characteristic, read both PNG masks from disk and score them with NumPy.
Ours loads each image's masks once and scores all pairs with one bit-packed overlap per
characteristic (``dermx.evaluate.localization_agreement``). Both run on the same images at native
resolution; the script checks that they agree, then times ours on every metadata image.

    python benchmarks/interrater_speed.py [--data ../shared/dermxdb] [--images 60] [--json FILE]
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.progress import track

from dermx.data import DermXDB, load_dermxdb
from dermx.evaluate import all_ordered_pairs, localization_agreement
from results import peak_rss_mb, report


def per_pair_baseline(db: DermXDB, stems: list[str]) -> dict[tuple[str, str, str, str], float]:
    """Dice of every ordered pair, reading both PNGs from disk for each pair."""
    dice = {}
    for stem in stems:
        ratings = db.ratings_of(stem)
        for a, b in itertools.permutations(ratings, 2):
            for characteristic in sorted(a.characteristics & b.characteristics):
                p = np.asarray(Image.open(db.masks[(a.annotator, stem, characteristic)]), dtype=np.float64) / 255
                y = np.asarray(Image.open(db.masks[(b.annotator, stem, characteristic)]), dtype=np.float64) / 255
                tp = np.minimum(p, y).sum()
                dice[(stem, characteristic, a.annotator, b.annotator)] = 2 * tp / (p.sum() + y.sum())
    return dice


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "dermxdb")
    parser.add_argument("--n-images", type=int, default=60, help="images for the side-by-side run")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    console = Console()
    db = load_dermxdb(args.data, check_mask_sizes=False)
    stems = db.stems()
    subset = stems[:: max(1, len(stems) // args.n_images)][: args.n_images]
    pairs = all_ordered_pairs(db.annotators())

    start = time.perf_counter()
    baseline = per_pair_baseline(db, list(track(subset, description="per-pair baseline", console=console)))
    baseline_s = time.perf_counter() - start
    results: dict[str, float] = {"side_by_side_images": len(subset), "baseline_s": baseline_s}
    ours: dict[str, dict[tuple[str, str, str, str], float]] = {}
    for source in ("png", "json"):
        start = time.perf_counter()
        tables = localization_agreement(db, subset, pairs, source=source, leave_one_out=False)
        results[f"ours_{source}_s"] = time.perf_counter() - start
        ours[source] = {(r.stem, r.characteristic, r.a, r.b): r.dice for r in tables.pairs.itertuples()}
    if ours["png"].keys() != baseline.keys():
        raise SystemExit("ours and the baseline scored different pairs")
    results["pairs"] = len(baseline)
    results["max_abs_dice_diff_vs_baseline"] = max(abs(ours["png"][k] - v) for k, v in baseline.items())
    results["speedup_png"] = baseline_s / results["ours_png_s"]
    results["speedup_json"] = baseline_s / results["ours_json_s"]

    start = time.perf_counter()
    full = localization_agreement(db, stems, pairs, progress=lambda s: track(s, "ours, all images", console=console))
    results["full_images"] = len(stems)
    results["full_pairs"] = len(full.pairs)
    results["full_s"] = time.perf_counter() - start
    results["peak_rss_mb"] = peak_rss_mb()

    report(
        console,
        "Rater-agreement localization table, native resolution",
        results,
        f"ours is {results['speedup_png']:.1f}x (PNG masks) / {results['speedup_json']:.1f}x (JSON "
        f"polygons) faster than the per-pair approach (goal >= 10x); "
        f"full table {results['full_s']:.1f} s (goal <= 60 s), peak RSS {results['peak_rss_mb']:.0f} MB "
        f"(goal <= 2048 MB)",
        args.json,
    )


if __name__ == "__main__":
    main()
