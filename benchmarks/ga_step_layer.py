"""Cost of one DermX+ training step by CAM layer: the preset's last block against an earlier stage.

    python benchmarks/ga_step_layer.py [--preset tiny] [--input-size 64] [--layers backbone.layer4,backbone.layer1]
                                       [--threads 1] [--steps 6]

Each step: forward, Grad-CAM of every characteristic at the CAM layer with ``create_graph`` (as the
guided-attention loss needs), a loss on maps and logits, backward and an AdamW update; batch 16,
channels-last. Prints the map grid and the median step time per layer, and each layer's ratio to the
first one.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dermx.explain import CamEngine
from dermx.models import build_model


def step_seconds(preset: str, size: int, layer: str, steps: int) -> tuple[tuple[int, int], float]:
    """(map grid, median seconds of one training step after a warm-up step)."""
    model = build_model(preset, kind="dermx+", pretrained=False, input_size=(size, size), cam_layer=layer)
    model = model.to(memory_format=torch.channels_last)
    engine = CamEngine(model, "gradcam", model.config.cam_layer, size="features", create_graph=True)
    images = torch.randn(16, 3, size, size).contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters())
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        result = engine(images, "characteristic")
        loss = result.maps.mean() + sum(v.mean() for v in result.logits.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return tuple(result.maps.shape[-2:]), statistics.median(times[1:])  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--layers", default="backbone.layer4,backbone.layer1")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    first = None
    for layer in args.layers.split(","):
        grid, seconds = step_seconds(args.preset, args.input_size, layer, args.steps)
        first = first or seconds
        print(f"{layer}: grid {grid[0]}x{grid[1]}, median step {seconds:.3f} s, {seconds / first:.1f}x the first")


if __name__ == "__main__":
    main()
