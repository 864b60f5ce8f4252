"""Peak memory of ``dermx predict`` on large photographs, the baseline code beside this tree's.

The script writes its own inputs (nothing is committed): a 25-megapixel camera-like JPEG (6124 × 4083,
smooth shading, noise and a darker lesion) and, with ``--png-megapixels``, a large PNG under Pillow's
decompression-bomb error threshold (169 MP by default: 13000 × 13000), and a checkpoint of ``--preset``
with random weights; a child process does that (``--prepare``), so this process stays small. Each case
then runs as its own process, ``python -m dermx predict --model CKPT IMAGE [--out DIR] [options]``, once
with ``PYTHONPATH`` on the baseline's ``src`` (``git archive`` of ``--baseline``, by default main before
issue 24) and once on this tree's, one after the other; its peak resident memory is the child's
``ru_maxrss`` from :func:`os.wait4`. (A child forked from a process that had imported torch would report
that process's memory as its own peak: hence the lean parent.)

    python benchmarks/predict_memory.py [--baseline REV] [--preset resnet50] [--png-megapixels 169]
                                        [--figure-sizes 1024 2048] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: main before the issue-24 changes (bounded figures, fewer full-size copies).
BASELINE = "5fe70f7"


def camera_photo(width: int, height: int, seed: int = 0) -> Any:
    """A large RGB picture with the statistics of a photograph rather than of noise: smooth shading,
    a darker elliptic lesion and mild sensor noise (so JPEG sizes are realistic)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    lesion = ((x - 0.55) / 0.18) ** 2 + ((y - 0.45) / 0.12) ** 2 < 1.0
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    for channel, (base, slope) in enumerate(((205, 30), (160, 25), (140, 20))):
        plane = base - slope * x - 0.5 * slope * y - 60.0 * lesion
        plane += rng.normal(0.0, 4.0, (height, width)).astype(np.float32)
        pixels[..., channel] = np.clip(plane, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def baseline_src(revision: str, folder: Path) -> Path:
    """The ``src`` folder of ``revision`` of this repository, extracted into ``folder``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "src"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder / "src"


def peak_rss(src: Path, args: list[str]) -> dict[str, Any]:
    """Run ``python -m dermx ARGS`` with ``src`` on ``PYTHONPATH``: exit code, wall seconds and peak RSS."""
    env = {**os.environ, "PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "dermx", *args], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    errors = child.stderr.read().decode(errors="replace") if child.stderr else ""
    return {"exit": child.returncode, "seconds": round(seconds, 1), "peak_rss_gb": round(usage.ru_maxrss / 1024**2, 3),
            "stderr_tail": errors.strip().splitlines()[-1:] if child.returncode else []}


def prepare(folder: Path, preset: str, png_megapixels: float) -> None:
    """Write the checkpoint and the images into ``folder`` (run in a child process: module docstring)."""
    sys.path.insert(0, str(REPO / "src"))
    from dermx.models import build_model, save_checkpoint

    save_checkpoint(build_model(preset, pretrained=False), folder / "ckpt")
    camera_photo(6124, 4083).save(folder / "photo_25mp.jpg", quality=92)
    if png_megapixels > 0:
        side = round((png_megapixels * 1e6) ** 0.5)
        camera_photo(side, side, seed=1).save(folder / "large.png", compress_level=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the baseline code")
    parser.add_argument("--preset", default="resnet50", help="model preset (random weights)")
    parser.add_argument("--threshold", type=float, default=0.5, help="characteristic threshold (maps drawn)")
    parser.add_argument("--png-megapixels", type=float, default=169.0, help="size of the large PNG (0: none)")
    parser.add_argument("--figure-sizes", type=int, nargs="*", default=[],
                        help="also run this tree with these --figure-size values")
    parser.add_argument("--baseline-png-out", action="store_true",
                        help="also run the baseline with --out on the large PNG (figures at its full size: "
                             "tens of GB)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--prepare", type=Path, default=None, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.prepare is not None:
        prepare(options.prepare, options.preset, options.png_megapixels)
        return

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        subprocess.run([sys.executable, __file__, "--prepare", str(work), "--preset", options.preset,
                        "--png-megapixels", str(options.png_megapixels)], check=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
        inputs = {"25 MP JPEG": work / "photo_25mp.jpg"}
        if options.png_megapixels > 0:
            inputs[f"{options.png_megapixels:g} MP PNG"] = work / "large.png"
        this_tree = REPO / "src"
        runs: list[tuple[str, Path, list[str]]] = [("baseline", baseline_src(options.baseline, work / "baseline"), []),
                                                   ("this tree", this_tree, [])]
        runs += [(f"this tree, --figure-size {size}", this_tree, ["--figure-size", str(size)])
                 for size in options.figure_sizes]
        common = ["--model", str(work / "ckpt"), "--threshold", str(options.threshold)]
        for image_name, image in inputs.items():
            for with_out in (False, True):
                for code, src, extra in runs:
                    if (extra and not with_out) or (code == "baseline" and with_out and image.suffix == ".png"
                                                    and not options.baseline_png_out):
                        continue
                    out = ["--out", str(work / f"out_{len(results)}")] if with_out else []
                    row = {"image": image_name, "out": with_out, "code": code,
                           **peak_rss(src, ["predict", *common, str(image), *out, *extra])}
                    results.append(row)
                    print(json.dumps(row), flush=True)
    print(f"\n{'image':<14} {'--out':<6} {'code':<32} {'peak RSS GB':>12} {'seconds':>8} exit")
    for row in results:
        print(f"{row['image']:<14} {'yes' if row['out'] else 'no':<6} {row['code']:<32} {row['peak_rss_gb']:>12.2f} "
              f"{row['seconds']:>8.1f} {row['exit']}")
    if options.json:
        options.json.write_text(json.dumps({"preset": options.preset, "baseline": options.baseline,
                                            "results": results}, indent=2))


if __name__ == "__main__":
    main()
