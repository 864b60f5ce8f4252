"""Leaderboard metrics: the floor vs Quantus vs dermx.evaluate, side by side in one process.

Same inputs, 2 intra-op threads (``--threads``), ResNet-18 (timm, random weights, 22 outputs) at 128 px, batch of 8
images, eval mode, scores are softmax probabilities.

1. Deletion (16 steps) for 22 targets: the floor is one forward per (image, target, map-dependent
   step) plus the two map-independent steps per image, run in full batches of 64 (a plain forward
   loop over pre-built images); Quantus ``PixelFlipping`` (one call per target, 16 steps of
   ``features_in_step = 3·H·W/16`` on the map repeated over channels; its assert that the step divides
   H·W, which 3·H·W/16 does not, is switched off: it removes whole pixels either way); ours
   (:func:`dermx.evaluate.faithfulness.deletion_curves`, every target at once).
2. ROAD (MoRF, 4 percentages) for 22 targets: floor as above; Quantus ``ROAD`` (one call per target,
   SciPy sparse solve per image and percentage); ours (batched conjugate gradients); both on one-channel
   images (Quantus' ROAD indexes a map broadcast over channels as if it had one), fed to the network
   repeated over its three input channels. Floor and ours: best of two interleaved runs.
3. MPRT (all layers of the cascade, Spearman) and 4. max-sensitivity (10 draws), on Grad-CAMs without
   the ReLU (random weights give all-zero maps after it, which Quantus' Spearman cannot take): Quantus
   explains one target per call, through an ``explain_func`` that is our own engine restricted to that target (so
   the per-explanation cost is identical and the difference is the metric's loop); ours explains all 22
   targets per pass.

Quantus runs on ``--quantus-targets`` targets (default 2) and its time is scaled to 22 (its calls per
target are independent and identical in cost); the table says so.

Usage: ``python benchmarks/leaderboard_speed.py [--quick] [--json FILE] [--demo RUN_DIR]``. With
``--demo`` it also times the whole leaderboard of ``RUN_DIR/models/{dermx,dermx+}`` (8 methods) on
``RUN_DIR/data`` with the default :class:`~dermx.evaluate.leaderboard.config.LeaderboardConfig`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from torch import Tensor, nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dermx.evaluate.leaderboard.faithfulness import deletion_curves, road_curves
from dermx.evaluate.leaderboard.robustness import map_sensitivity
from dermx.evaluate.leaderboard.sanity import average_ranks, cascading_randomisation, spearman
from dermx.explain import CamEngine
from results import report

N_TARGETS = 22


#: The clock of :func:`timed`: wall time, or with ``--cpu-time`` the process's CPU time (both threads),
#: which other processes on a shared machine barely move.
CLOCK: Callable[[], float] = time.perf_counter


def timed(run: Callable[[], object]) -> float:
    start = CLOCK()
    run()
    return CLOCK() - start


def best_of_two(first: Callable[[], float], second: Callable[[], float]) -> tuple[float, float]:
    """Each timing's best of two interleaved runs (load from other processes hits both alike)."""
    a1, b1 = first(), second()
    a2, b2 = first(), second()
    return min(a1, a2), min(b1, b2)


def floor(model: nn.Module, n_forwards: int, size: int, batch: int = 64) -> float:
    """Seconds for ``n_forwards`` image forwards in full batches (images pre-built: no perturbation)."""
    images = torch.rand(batch, 3, size, size)
    full, rest = divmod(n_forwards, batch)

    def run() -> None:
        with torch.no_grad():
            for _ in range(full):
                model(images)
            if rest:
                model(images[:rest])

    return timed(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 px, 4 images, fewer steps (a smoke run)")
    parser.add_argument("--quantus-targets", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--parts", default="deletion,road,mprt,sensitivity",
                        help="comma-separated parts to run: deletion, road, mprt, sensitivity")
    parser.add_argument("--demo", type=Path, help="demo run folder: also time its 2 models x 8 methods leaderboard")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (the issue's setting: 2)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with the process's CPU time instead of wall time (for a shared machine)")
    args = parser.parse_args()
    if args.cpu_time:
        global CLOCK
        CLOCK = time.process_time
    torch.set_num_threads(args.threads)
    import timm

    size, n_images, steps = (64, 4, 8) if args.quick else (128, 8, 16)
    console = Console()
    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=N_TARGETS).eval()
    images = torch.rand(n_images, 3, size, size)
    engine = CamEngine(model, "gradcam", "layer4", size="input", relu=False)
    maps = engine(images).maps.detach()  # (B, 22, H, W)
    targets = torch.arange(N_TARGETS)

    def score(x: Tensor) -> Tensor:
        return model(x).softmax(dim=-1)

    q_targets = min(args.quantus_targets, N_TARGETS)
    scale = N_TARGETS / q_targets
    results: dict[str, float | int] = {"image size": size, "images": n_images, "targets": N_TARGETS,
                                       "quantus targets timed (scaled to 22)": q_targets}

    parts = set(args.parts.split(","))
    if "deletion" in parts:
        results.update(deletion_part(model, score, images, maps, targets, steps, size, q_targets, scale))
        console.print(results, highlight=False)  # as it goes: a long run shows its progress
    if "road" in parts:
        results.update(road_part(model, score, images, maps, targets, size, q_targets, scale))
        console.print(results, highlight=False)
    if "mprt" in parts:
        results.update(mprt_part(model, images, maps, q_targets, scale))
        console.print(results, highlight=False)
    if "sensitivity" in parts:
        results.update(sensitivity_part(model, engine, images, maps, q_targets, scale, 3 if args.quick else 10))
    if args.demo is not None:
        results.update(demo_leaderboard(args.demo, console))
    verdict = "; ".join(f"{k} {v:.2f}" for k, v in results.items() if k.endswith("/ ours"))
    report(console, f"leaderboard metrics, ResNet-18 at {size} px, {n_images} images x {N_TARGETS} targets",
           results, verdict, args.json)


def deletion_part(model: nn.Module, score: Callable[[Tensor], Tensor], images: Tensor, maps: Tensor,
                  targets: Tensor, steps: int, size: int, q_targets: int, scale: float) -> dict[str, float | int]:
    import quantus
    import quantus.helpers.asserts as quantus_asserts
    import quantus.metrics.faithfulness.pixel_flipping as quantus_pixel_flipping

    n_images = len(images)
    x_np, labels = images.numpy(), np.zeros(n_images, dtype=int)
    results: dict[str, float | int] = {}
    n_del = n_images * N_TARGETS * (steps - 1) + 2 * n_images
    results["deletion: image-forwards"] = n_del
    results["deletion: floor s"], ours = best_of_two(
        lambda: floor(model, n_del, size),
        lambda: timed(lambda: deletion_curves(score, images, maps, targets, steps=steps, baseline="min")))
    results["deletion: ours s"] = ours
    quantus_pixel_flipping.asserts.assert_features_in_step = lambda **_: None  # see module docstring
    metric = quantus.PixelFlipping(features_in_step=3 * size * size // steps, perturb_baseline="black",
                                   normalise=False, disable_warnings=True)
    q = timed(lambda: [metric(model=model, x_batch=x_np, y_batch=labels + t,
                              a_batch=maps[:, t:t + 1].expand(-1, 3, -1, -1).numpy(), device="cpu", softmax=True)
                       for t in range(q_targets)]) * scale
    quantus_pixel_flipping.asserts.assert_features_in_step = quantus_asserts.assert_features_in_step
    results["deletion: quantus s"] = q
    results["deletion: floor / ours"] = results["deletion: floor s"] / ours
    results["deletion: quantus / ours"] = q / ours
    return results


def road_part(model: nn.Module, score: Callable[[Tensor], Tensor], images: Tensor, maps: Tensor, targets: Tensor,
              size: int, q_targets: int, scale: float) -> dict[str, float | int]:
    import quantus

    n_images = len(images)
    labels = np.zeros(n_images, dtype=int)
    results: dict[str, float | int] = {}
    percentages = [20, 40, 60, 80]
    n_road = n_images * N_TARGETS * len(percentages)
    results["ROAD: image-forwards"] = n_road
    gray = images.mean(dim=1, keepdim=True)  # Quantus' ROAD needs one-channel maps and images: both sides
    gray_model = nn.Sequential(_Repeat3(), model).eval()

    def gray_score(x: Tensor) -> Tensor:
        return gray_model(x).softmax(dim=-1)

    results["ROAD: floor s"], ours = best_of_two(
        lambda: floor(model, n_road, size),
        lambda: timed(lambda: road_curves(gray_score, gray, maps, targets, percentages=percentages, noise=0.01)))
    results["ROAD: ours s"] = ours
    road = quantus.ROAD(percentages=percentages, noise=0.01, normalise=False, disable_warnings=True)
    q = timed(lambda: [road(model=gray_model, x_batch=gray.numpy(), y_batch=labels + t,
                            a_batch=maps[:, t:t + 1].numpy(), device="cpu") for t in range(q_targets)]) * scale
    results["ROAD: quantus s"] = q
    results["ROAD: floor / ours"] = results["ROAD: floor s"] / ours
    results["ROAD: quantus / ours"] = q / ours
    return results


def explain_one(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **_: object) -> np.ndarray:
    """Quantus' ``explain_func``: dermx's engine restricted to one target (the same for every image)."""
    x = torch.as_tensor(inputs)
    out = CamEngine(model, "gradcam", "layer4", size="input", relu=False)(x, targets=[int(targets[0])]).maps
    return out.detach().numpy()


def mprt_part(model: nn.Module, images: Tensor, maps: Tensor, q_targets: int, scale: float) -> dict[str, float | int]:
    import quantus

    x_np, labels = images.numpy(), np.zeros(len(images), dtype=int)
    results: dict[str, float | int] = {}

    def ours_mprt() -> None:
        ranks = average_ranks(maps)  # the trained maps are ranked once
        for _, randomised in cascading_randomisation(model):
            random_maps = CamEngine(randomised, "gradcam", "layer4", size="input", relu=False)(images).maps.detach()
            spearman(maps, random_maps, a_ranks=ranks)

    results["MPRT: layers"] = sum(1 for m in model.modules() if hasattr(m, "reset_parameters"))
    ours = timed(ours_mprt)
    results["MPRT: ours s"] = ours
    mprt = quantus.MPRT(normalise=False, abs=False, disable_warnings=True)
    q = timed(lambda: [mprt(model=model, x_batch=x_np, y_batch=labels + t, a_batch=maps[:, t:t + 1].numpy(),
                            device="cpu", explain_func=explain_one) for t in range(q_targets)]) * scale
    results["MPRT: quantus s"] = q
    results["MPRT: quantus / ours"] = q / ours
    return results


def sensitivity_part(model: nn.Module, engine: CamEngine, images: Tensor, maps: Tensor, q_targets: int, scale: float,
                     samples: int) -> dict[str, float | int]:
    import quantus

    x_np, labels = images.numpy(), np.zeros(len(images), dtype=int)
    results: dict[str, float | int] = {}
    ours = timed(lambda: map_sensitivity(lambda x: engine(x).maps.detach(), images, n_samples=samples, radius=0.02,
                                     maps=maps))
    results["max-sensitivity: ours s"] = ours
    sens = quantus.MaxSensitivity(nr_samples=samples, lower_bound=0.02, normalise=False, disable_warnings=True)
    q = timed(lambda: [sens(model=model, x_batch=x_np, y_batch=labels + t, a_batch=maps[:, t:t + 1].numpy(),
                            device="cpu", explain_func=explain_one) for t in range(q_targets)]) * scale
    results["max-sensitivity: quantus s"] = q
    results["max-sensitivity: quantus / ours"] = q / ours
    return results


class _Repeat3(nn.Module):
    """One-channel input to the three channels the network expects (Quantus' ROAD needs one-channel maps
    and images of the same shape)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.expand(-1, 3, -1, -1)


def demo_leaderboard(run: Path, console: Console) -> dict[str, float | int]:
    """Time the default leaderboard of the demo's two models and eight methods."""
    import tempfile

    from dermx.data import load_dermxdb
    from dermx.evaluate.candidates import load_candidates
    from dermx.evaluate.leaderboard.config import LeaderboardConfig
    from dermx.evaluate.leaderboard.run import run_leaderboard

    with tempfile.TemporaryDirectory() as cache:
        db = load_dermxdb(run / "data", image_dir=run / "data" / "images", check_mask_sizes=False, cache_dir=cache)
        config = LeaderboardConfig()
        start = CLOCK()
        models = [("DermX", run / "models" / "dermx"), ("DermX+", run / "models" / "dermx+")]
        candidates = [c for name, path in models for c in load_candidates(name, path, db)]
        board = run_leaderboard(db, candidates, "all", config,
                                say=lambda m: console.print(f"[{CLOCK() - start:6.0f} s] {m}"))
        seconds = CLOCK() - start
    return {"demo leaderboard s (2 models x 8 methods)": seconds, "demo leaderboard rows": len(board.frame()),
            "demo: faithfulness images per model": config.n_images, "demo: deletion steps": config.steps}


if __name__ == "__main__":
    main()
