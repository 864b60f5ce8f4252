"""DermXDB data layer timings: annotation parsing against bare ``json.load``, and fused maps cold
(from JSON polygons, from PNGs) against warm (from the cache).

    python benchmarks/data_load.py [--data ../shared/dermxdb] [--size 224] [--images N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import track

from dermx.data import load_dermxdb
from dermx.data.reader import read_annotations
from dermx.data.records import LoadReport
from results import peak_rss_mb, report


def time_json_load(files: list[Path]) -> float:
    start = time.perf_counter()
    for path in files:
        with path.open("rb") as handle:
            json.load(handle)
    return time.perf_counter() - start


def time_parse(root: Path) -> float:
    start = time.perf_counter()
    read_annotations(root, LoadReport())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "dermxdb")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--n-images", type=int, default=None, help="limit the number of images (default: all 566)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    console = Console()

    files = sorted((args.data / "annotations").glob("*.json"))
    time_json_load(files)  # warm the OS file cache for both contenders
    json_s = min(time_json_load(files) for _ in range(3))
    parse_s = min(time_parse(args.data) for _ in range(3))

    results: dict[str, float] = {"json_load_s": json_s, "parse_s": parse_s, "parse_ratio": parse_s / json_s}
    size = (args.input_size, args.input_size)
    with tempfile.TemporaryDirectory() as cache_dir:
        db = load_dermxdb(args.data, cache_dir=cache_dir)
        stems = db.stems()[: args.n_images]
        for label, source in (("cold_json", "json"), ("cold_png", "png"), ("warm_json", "json")):
            start = time.perf_counter()
            total = 0.0
            for stem in track(stems, description=f"fused mean maps, {label}", console=console, transient=True):
                total += float(db.fused_maps(stem, "mean", size=size, source=source).sum())
            results[f"{label}_s"] = time.perf_counter() - start
        results["warm_speedup_vs_cold_json"] = results["cold_json_s"] / results["warm_json_s"]
        results["warm_speedup_vs_cold_png"] = results["cold_png_s"] / results["warm_json_s"]
    results["peak_rss_mb"] = peak_rss_mb()
    results["images"] = len(stems)

    report(
        console,
        f"DermXDB data layer ({len(files)} annotation files; {len(stems)} images at {size})",
        results,
        f"parse / json.load = {results['parse_ratio']:.2f}x (goal <= 2x); "
        f"warm cache speed-up = {results['warm_speedup_vs_cold_json']:.1f}x vs JSON, "
        f"{results['warm_speedup_vs_cold_png']:.1f}x vs PNG (goal >= 10x)",
        args.json,
    )


if __name__ == "__main__":
    main()
