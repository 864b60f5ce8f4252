"""GPU parity and throughput checks: one line per check, ``PASS|FAIL|SKIP <check>: <figures>``.

On a DermX network of ``--preset`` (default ResNet-50) at ``--input-size`` 224 px with random weights
(``pretrained=False``, seed 0), eval mode, on ``--n-images`` random images:

- ``maps <device> <precision>``: every target's Grad-CAM (22 maps per image, one engine pass, maps at the
  input size, without the final ReLU) against the CPU float32 maps, the differences in units of each
  reference map's largest |value|. Float32 on the GPU (TF32 switched off): max ≤ ``FLOAT32_MAX_ABS``.
  Mixed precision (bf16 autocast, on the CPU and on the GPU): mean ≤ ``MIXED_MEAN_ABS`` and the median
  over maps of Pearson's r ≥ ``MIXED_MEDIAN_R`` (bfloat16 keeps 8 bits of mantissa, so single pixels
  may move; the maps' shape must not). Constant reference maps are a FAIL (nothing was compared): timm
  initialises the last batch norm of every residual block to zero, which makes every Grad-CAM at the
  ResNet-50 preset's layer (``layer4.2.conv3``, feeding that norm) exactly 0, so :func:`alive` sets those
  norms' weights to 1 first;
- ``deletion AUC <device> <precision>``: the leaderboard's deletion AUC (8 steps, blur baseline, the
  predicted diagnosis's map) against CPU float32's: max |Δ| ≤ ``AUC_MAX_ABS`` (float32) or
  ``AUC_MIXED_MAX_ABS`` (mixed);
- ``throughput <device>``: images per second of the 22-target CAM pass at batch ``--batch-size``, after a
  warm-up; the GPU line passes when the GPU is faster than this run's CPU.

Device and autocast come from :class:`dermx.compute.Compute` (``torch_device()``, ``autocast()``). Without a
CUDA device the GPU lines say SKIP and the CPU ones still run (CPU bf16 vs float32, CPU throughput). Exit
status 0 when nothing FAILs, 1 otherwise. Run it through ``bash benchmarks/gpu_check.sh`` (an 8-minute cap).

    python benchmarks/gpu_check.py [--preset resnet50] [--n-images 4] [--batch-size 16] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from torch import Tensor

from dermx.compute import Compute
from dermx.evaluate.leaderboard.faithfulness import deletion_curves
from dermx.evaluate.leaderboard.model_metrics import scores
from dermx.explain import CamEngine
from dermx.models import DermXNet, build_model

FLOAT32_MAX_ABS = 1e-3
MIXED_MEAN_ABS = 0.05
MIXED_MEDIAN_R = 0.95
AUC_MAX_ABS = 1e-3
AUC_MIXED_MAX_ABS = 0.05


class Checks:
    """Prints each check's line as it is decided and remembers whether any failed."""

    def __init__(self) -> None:
        self.failed = False

    def line(self, status: str, name: str, figures: str) -> None:
        self.failed |= status == "FAIL"
        print(f"{status} {name}: {figures}", flush=True)

    def verdict(self, name: str, passed: bool, figures: str) -> None:
        self.line("PASS" if passed else "FAIL", name, figures)

    def guarded(self, name: str, run: Callable[[], None]) -> None:
        """Run one check; an exception is its FAIL (with the error), not the end of the other checks."""
        try:
            run()
        except Exception as error:  # every error of a check is that check's FAIL
            self.line("FAIL", name, f"{type(error).__name__}: {error}")


def alive(model: DermXNet) -> DermXNet:
    """Set every all-zero batch-norm weight to 1 (timm's ``zero_init_last``), so that random-weight maps
    at a layer feeding such a norm are not identically 0."""
    for module in model.modules():
        weight = getattr(module, "weight", None) if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) else None
        if weight is not None and not bool(weight.detach().any()):
            torch.nn.init.ones_(weight)
    return model


def all_maps(model: DermXNet, images: Tensor, compute: Compute) -> Tensor:
    """Every target's map ``(B, T, H, W)`` in float32 on the CPU, computed on ``compute``'s device and precision."""
    device = compute.torch_device()
    engine = CamEngine(model.to(device), layer=model.config.cam_layer, size="input", relu=False)
    with compute.autocast(device):
        maps = engine(images.to(device)).maps.detach()
    return maps.float().cpu()


def deletion_auc(model: DermXNet, images: Tensor, maps: Tensor, compute: Compute) -> Tensor:
    """Deletion AUC ``(B,)`` of the predicted diagnosis's map (8 steps, blur baseline) on ``compute``."""
    device = compute.torch_device()
    model = model.to(device)
    score = scores(model)

    def score_float(x: Tensor) -> Tensor:
        with compute.autocast(device):
            return score(x).float()

    n_char = len(model.config.characteristics)
    x = images.to(device)
    with torch.no_grad():
        target = n_char + score_float(x)[:, n_char:].argmax(dim=1)
    picked = maps[torch.arange(len(maps)), target.cpu()][:, None].to(device)
    with torch.no_grad():
        curves = deletion_curves(score_float, x, picked, target[:, None], steps=8, baseline="blur")
    return curves.auc()[:, 0].float().cpu()


def correlations(a: Tensor, b: Tensor) -> Tensor:
    """Pearson's r of each pair of maps (NaN where a map is constant)."""
    a, b = a.flatten(2).double(), b.flatten(2).double()
    a, b = a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True)
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))


def compare_maps(checks: Checks, name: str, reference: Tensor, maps: Tensor, mixed: bool) -> None:
    scale = reference.abs().flatten(2).amax(-1)[..., None, None]  # (B, T, 1, 1): each map's largest |value|
    if not bool((scale > 0).any()):
        checks.line("FAIL", name, "every reference map is 0: nothing compared")
        return
    diff = ((maps - reference).abs() / scale.clamp_min(1e-12))[(scale > 0).expand_as(maps)]
    r = correlations(maps, reference)
    median_r = float(r[~torch.isnan(r)].median()) if (~torch.isnan(r)).any() else float("nan")
    figures = (f"max |Δ| {float(diff.max()):.2e}, mean |Δ| {float(diff.mean()):.2e} (of each map's max |value|), "
               f"median r {median_r:.4f}")
    if mixed:
        checks.verdict(name, float(diff.mean()) <= MIXED_MEAN_ABS and median_r >= MIXED_MEDIAN_R,
                       f"{figures} (tolerance: mean |Δ| ≤ {MIXED_MEAN_ABS}, median r ≥ {MIXED_MEDIAN_R})")
    else:
        checks.verdict(name, float(diff.max()) <= FLOAT32_MAX_ABS,
                       f"{figures} (tolerance: max |Δ| ≤ {FLOAT32_MAX_ABS})")


def throughput(model: DermXNet, compute: Compute, size: int, batch: int, seconds: float) -> float:
    """Images per second of the 22-target CAM pass on ``compute`` (one warm-up batch, then ``seconds``)."""
    device = compute.torch_device()
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
    engine = CamEngine(model.to(device), layer=model.config.cam_layer, size="input")

    def run() -> None:
        with compute.autocast(device):
            engine(images).maps.sum().item()  # .item() waits for the device

    run()
    done, start = 0, time.perf_counter()
    while done == 0 or time.perf_counter() - start < seconds:
        run()
        done += batch
    return done / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--preset", default="resnet50")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--n-images", type=int, default=4, help="images of the parity checks")
    parser.add_argument("--batch-size", type=int, default=16, help="batch of the throughput checks")
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds of each throughput check")
    parser.add_argument("--threads", type=int, default=None, help="CPU intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 parity means float32 on the GPU too
    torch.backends.cudnn.allow_tf32 = False
    size = args.input_size
    torch.manual_seed(0)
    model = alive(build_model(args.preset, pretrained=False, input_size=(size, size))).eval()
    images = torch.rand(args.n_images, 3, size, size, generator=torch.Generator().manual_seed(0))
    cpu = Compute(device="cpu")
    gpu = torch.cuda.is_available()
    why = "no CUDA device on this machine" if not gpu else ""
    print(f"{args.preset} at {size} px, random weights, {args.n_images} images, CPU threads {torch.get_num_threads()}, "
          f"GPU: {torch.cuda.get_device_name(0) if gpu else 'none'}", flush=True)
    checks = Checks()
    reference = all_maps(model, images, cpu)
    reference_auc = deletion_auc(model, images, reference, cpu)
    cases = [("cpu", "bf16-mixed"), ("cuda", "32"), ("cuda", "bf16-mixed")]
    for device, precision in cases:
        name = f"maps {device} {precision} vs cpu 32"
        auc_name = f"deletion AUC {device} {precision} vs cpu 32"
        if device == "cuda" and not gpu:
            checks.line("SKIP", name, why)
            checks.line("SKIP", auc_name, why)
            continue
        compute = Compute(device=device, precision=precision)
        mixed = precision != "32"

        def maps_check(compute: Compute = compute, name: str = name, mixed: bool = mixed) -> None:
            compare_maps(checks, name, reference, all_maps(model, images, compute), mixed)

        def auc_check(compute: Compute = compute, name: str = auc_name, mixed: bool = mixed) -> None:
            auc = deletion_auc(model, images, reference, compute)
            gap, tolerance = float((auc - reference_auc).abs().max()), AUC_MIXED_MAX_ABS if mixed else AUC_MAX_ABS
            checks.verdict(name, gap <= tolerance, f"max |Δ AUC| {gap:.2e} (tolerance {tolerance}); cpu 32 AUCs "
                                                   f"{[round(float(v), 4) for v in reference_auc]}")

        checks.guarded(name, maps_check)
        checks.guarded(auc_name, auc_check)
    rates: dict[str, float] = {}

    def rate_check(device: str) -> None:
        rates[device] = throughput(model, Compute(device=device), size, args.batch_size, args.seconds)
        figures = f"{rates[device]:.2f} images/s, 22-target CAM pass, batch {args.batch_size}, {size} px, float32"
        if device == "cpu":
            checks.verdict("throughput cpu", rates[device] > 0, figures)
        else:
            ratio = rates[device] / rates["cpu"] if rates.get("cpu") else float("nan")
            checks.verdict("throughput cuda", ratio > 1, f"{figures}; {ratio:.1f}× this CPU")

    checks.guarded("throughput cpu", lambda: rate_check("cpu"))
    if gpu:
        checks.guarded("throughput cuda", lambda: rate_check("cuda"))
    else:
        checks.line("SKIP", "throughput cuda", why)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
