"""Per-image cost of each stage at 224 px on this machine's CPU, and what the seed papers' protocols would take.

Measured, for each backbone of ``--backbones`` (default ResNet-50 and EfficientNet-B4, their dermx presets
at ``--input-size`` 224, random weights: ``pretrained=False``), on ``--n-images`` synthetic images (a
``dermx synth`` set at 224 px written to a temporary folder) with ``--threads`` intra-op threads:

- a training step (forward, DermX loss, backward, AdamW) of ``dermx`` and of ``dermx+`` (the guided-attention
  loss: every characteristic's Grad-CAM in one double backward), batches of ``--n-images``
  (:func:`train_throughput.time_loop`, one warm-up step);
- the benchmark's explanation (every target's Grad-CAM in one pass, :class:`~dermx.evaluate.candidates.Candidate`'s
  ``explain``) and its scoring (:func:`~dermx.evaluate.benchmark.scoring.score_batch`);
- the leaderboard of the seven gradient methods with the :class:`LeaderboardConfig` defaults, stage by stage as
  :func:`~dermx.evaluate.leaderboard.model_metrics.model_metrics` runs them (timed between its progress
  messages): every method's maps, deletion / insertion (blur and mean baselines), ROAD (MoRF, LeRF),
  faithfulness correlation, the MPRT cascade, max/avg-sensitivity; random logit timed on its own;
- Score-CAM: one masked forward per channel of the CAM layer, so its maps cost channels × a forward of one
  image (the forward measured at the engine's batch of masked images; ``--measure-scorecam`` times the
  engine itself on one image, minutes per backbone).

Per-image figures at small N carry fixed per-model costs (the cascade re-initialises every layer whatever N):
for larger N they are upper bounds. The projection (every assumption is printed with it) multiplies them by
the protocols' image counts: (a) the DermX study, 566 DermXDB images, 5-fold cross-validation training, then
every image explained and scored by the fold that held it out; (b) the follow-up study's leaderboard,
11 architectures × 8 CAM methods. Columns: this CPU (measured rates), one GPU (``--gpu-speedup``, by default
derived from a public throughput figure, an assumption) and eight GPUs (one GPU's time / 8 / an efficiency:
``--gpu-efficiency``, or the measured process scaling of ``--processes-json``, see :func:`process_efficiency`).

    python benchmarks/scale.py [--n-images 4] [--backbones resnet50,efficientnet_b4] [--threads 2]
                               [--epochs 50] [--gpu-speedup X] [--processes-json FILE] [--json FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from rich.console import Console
from rich.table import Table

from cam_throughput import best_seconds
from train_throughput import make_batches, module_for, module_step, time_loop

#: The default GPU throughput (an assumption, not a measurement here): timm's ``benchmark.py`` training
#: ResNet-50 at 224 px on one A100 with AMP and channels-last, batch 512: "throughput always 2600 img/s"
#: (https://github.com/huggingface/pytorch-image-models/issues/1491). The GPU speed-up is this figure
#: over this CPU's measured ResNet-50 DermX training rate, applied to every stage.
GPU_TRAIN_IMAGES_PER_S = 2600.0
#: Eight GPUs' efficiency (an assumption): their speed-up over one is 8 × this.
GPU_EFFICIENCY = 0.9
#: DermXDB's images with a reference diagnosis (docs/design.md) and the follow-up's architectures and methods.
DERMXDB_IMAGES, FOLDS, ARCHITECTURES, METHODS = 566, 5, 11, 8
GRADIENT_METHODS = ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "cam", "eigencam")
#: model_metrics' progress messages (after "<model>: ") → the stage that starts there.
MESSAGES = {"deletion": "deletion / insertion", "ROAD": "ROAD", "faithfulness": "faithfulness correlation",
            "cascading": "MPRT cascade", "sensitivity": "max/avg-sensitivity"}


@dataclass
class Costs:
    """Seconds per image of each measured stage of one backbone (``per_image``), and its Score-CAM
    figures (``scorecam``: channels and seconds per image of one map of every target) and the gradient
    methods that can explain it (``methods``: CAM needs the layer that feeds global pooling)."""

    backbone: str
    per_image: dict[str, float] = field(default_factory=dict)
    scorecam: dict[str, float] = field(default_factory=dict)
    methods: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)


def synth_set(folder: Path, n_images: int, size: int) -> Path:
    """A synthetic DermXDB of ``n_images`` at ``size`` px (``dermx synth``, seed 0)."""
    subprocess.run([sys.executable, "-m", "dermx", "synth", "--out", str(folder), "--n-images", str(n_images),
                    "--image-size", str(size), "--seed", "0"], check=True, stdout=subprocess.DEVNULL)
    return folder


def train_costs(preset: str, size: int, n_images: int, steps: int) -> dict[str, float]:
    batches = make_batches(1 + steps, n_images, size)
    out = {}
    for kind, label in (("dermx", "train step, DermX"), ("dermx+", "train step, DermX+ (guided attention)")):
        module = module_for(kind, size, preset=preset)
        out[label] = time_loop(module_step(module), list(module.model.parameters()), batches, warmup=1) / (
            steps * n_images)
    return out


def timed_stages(run: Callable[[Callable[[str], None]], object], first: str) -> dict[str, float]:
    """Seconds of each stage of ``run(say)``, split at its progress messages (:data:`MESSAGES`); the
    time before the first message is ``first``."""
    marks: list[tuple[str, float]] = [(first, time.perf_counter())]

    def say(message: str) -> None:
        text = message.split(": ", 1)[-1]
        marks.append((next((s for k, s in MESSAGES.items() if text.startswith(k)), text), time.perf_counter()))

    run(say)
    marks.append(("end", time.perf_counter()))
    return {name: end - start for (name, start), (_, end) in itertools.pairwise(marks)}


def measure(preset: str, args: argparse.Namespace, data: Path, work: Path, console: Console) -> Costs:
    from dermx.data import load_dermxdb
    from dermx.data.references import ReferenceMaps
    from dermx.evaluate.benchmark.scoring import score_batch
    from dermx.evaluate.candidates import Explanation, load_candidates
    from dermx.evaluate.leaderboard.config import LeaderboardConfig
    from dermx.evaluate.leaderboard.model_metrics import method_maps, model_metrics
    from dermx.evaluate.leaderboard.sanity import random_logit
    from dermx.explain import CamEngine
    from dermx.models import build_model, save_checkpoint
    from dermx.progress import track

    n, size = args.n_images, args.input_size
    costs = Costs(preset)
    torch.manual_seed(0)
    save_checkpoint(build_model(preset, pretrained=False, input_size=(size, size)), work / preset)
    db = load_dermxdb(data, image_dir=data / "images", check_mask_sizes=False)
    candidate = load_candidates(preset, work / preset, db, allow_overlap=True)[0]
    model = candidate.model
    assert model is not None
    model.eval()
    stems, batch = next(iter(candidate.batches(db, sorted(candidate.stems)[:n], map_fn=ReferenceMaps.for_benchmark(db),
                                               batch_size=n)))
    images = batch["image"]
    config = LeaderboardConfig(n_images=n)

    def training() -> None:
        costs.per_image.update(train_costs(preset, size, n, args.train_steps))

    def benchmark() -> None:
        def explain() -> Explanation:
            with torch.no_grad():
                return candidate.explain(batch)

        explanation = explain()

        def score() -> object:
            return score_batch(stems, batch["diagnosis"], batch["characteristics"].bool(), batch["maps"],
                               explanation, candidate.characteristics, grid=candidate.map_grid)

        timed = best_seconds({"explain": explain, "score": score}, args.repeats)
        costs.per_image["CAMs, 22 targets (benchmark explain)"] = timed["explain"] / n
        costs.per_image["benchmark scoring"] = timed["score"] / n

    def leaderboard_maps() -> None:
        costs.methods = tuple(m for m in GRADIENT_METHODS if explains(model, m, images[:1]))
        start = time.perf_counter()
        maps = method_maps(model, costs.methods, images, config.batch_size)
        costs.per_image["agreement maps, gradient methods (one pass)"] = (time.perf_counter() - start) / n
        n_char = len(model.config.characteristics)
        dx_columns = torch.arange(n_char, n_char + len(model.config.diagnoses))
        predicted = n_char + torch.zeros(n, dtype=torch.long)
        start = time.perf_counter()
        for method in costs.methods:
            random_logit(maps[method], predicted, dx_columns, seed=config.seed)
        costs.per_image["random logit"] = (time.perf_counter() - start) / n

    def leaderboard_metrics() -> None:
        stages = timed_stages(lambda say: model_metrics(db, candidate, costs.methods, config, say),
                              "maps (+ one-image probe per method)")
        costs.per_image.update({f"leaderboard {k}": v / n for k, v in stages.items()})
        costs.notes.append("the faithfulness correlation stage also holds random logit (timed alone above); "
                           f"LeaderboardConfig defaults except n_images={n}")

    def scorecam() -> None:
        layer = model.get_submodule(model.config.cam_layer)
        channels = int(getattr(layer, "out_channels", 0))
        if args.measure_scorecam or not channels:
            engine = CamEngine(model, "scorecam", model.config.cam_layer, size="input")
            start = time.perf_counter()
            engine(images[:1])
            map_seconds = time.perf_counter() - start
            costs.notes.append("Score-CAM map: the engine timed on one image")
        else:
            masked = images[:1].expand(32, -1, -1, -1).contiguous()  # the engine's default score_batch_size
            forward = best_seconds({"forward": lambda: _no_grad_forward(model, masked)}, args.repeats)["forward"]
            map_seconds = channels * forward / 32
            costs.notes.append(f"Score-CAM map: {channels} channels × a forward of one image at batch 32 "
                               f"({forward / 32 * 1e3:.1f} ms), not the engine timed (--measure-scorecam)")
        costs.scorecam = {"channels": channels, "map s / image": map_seconds}

    stages = (training, benchmark, leaderboard_maps, leaderboard_metrics, scorecam)
    for stage in track(stages, f"{preset}: training, benchmark, leaderboard maps, metrics, Score-CAM",
                       console=console):
        stage()
    return costs


def explains(model: torch.nn.Module, method: str, image: torch.Tensor) -> bool:
    """Whether ``method`` can explain ``model`` (the leaderboard leaves a method out that cannot)."""
    from dermx.evaluate.leaderboard.model_metrics import method_maps

    try:
        method_maps(model, [method], image, 1)
    except (ValueError, RuntimeError):
        return False
    return True


def _no_grad_forward(model: torch.nn.Module, images: torch.Tensor) -> object:
    with torch.no_grad():
        return model(images)


def process_efficiency(path: Path | None) -> float | None:
    """THE PLACE FOR THE MEASURED PROCESS SCALING (the lead feeds it): ``--processes-json FILE`` holds
    the wall seconds of the same ``dermx evaluate`` run with 1 and 2 processes, ``{"1": s1, "2": s2}``
    (more counts may follow; the largest is used). Returns the per-process efficiency
    ``s1 / (k · s_k)``, which then replaces :data:`GPU_EFFICIENCY` for the eight-GPU column; ``None``
    without a file."""
    if path is None:
        return None
    seconds = {int(k): float(v) for k, v in json.loads(path.read_text()).items()}
    k = max(seconds)
    if k < 2 or 1 not in seconds:
        raise ValueError(f"{path}: expected seconds for 1 and at least 2 processes, got {sorted(seconds)}")
    return seconds[1] / (k * seconds[k])


def leaderboard_seconds(costs: Costs, test_images: int, metric_images: int) -> float:
    """One model's leaderboard of the seven gradient methods and Score-CAM: agreement maps and scoring on
    ``test_images`` (Score-CAM on the first ``LeaderboardConfig.score_images``), faithfulness / sanity /
    robustness on ``metric_images``. Measured with the gradient methods that explain the model; the
    other ones are counted at their average cost (times 7 / measured: linear in the methods, an upper
    bound since one pass gives every method's maps)."""
    from dermx.evaluate.leaderboard.config import LeaderboardConfig

    config = LeaderboardConfig()
    per, scale = costs.per_image, len(GRADIENT_METHODS) / len(costs.methods)
    gradient = scale * sum(v for k, v in per.items() if k.startswith("leaderboard "))
    perturbation = sum(per[f"leaderboard {s}"] for s in ("deletion / insertion", "ROAD", "faithfulness correlation"))
    score_map = costs.scorecam["map s / image"]
    scorecam = (1 + config.mprt_steps + config.sensitivity_samples) * score_map + perturbation / len(costs.methods)
    score_images = min(test_images, config.score_images or test_images)
    agreement = test_images * (scale * per["agreement maps, gradient methods (one pass)"]
                               + METHODS * per["benchmark scoring"]) + score_images * score_map
    return agreement + metric_images * (gradient + scorecam)


def projection(costs: Sequence[Costs], args: argparse.Namespace) -> tuple[list[tuple[str, float]], list[str]]:
    """(protocol row, CPU seconds) and the assumptions behind them."""
    from dermx.evaluate.leaderboard.config import LeaderboardConfig

    train_images = DERMXDB_IMAGES * (FOLDS - 1) / FOLDS
    rows = []
    for c in costs:
        per = c.per_image
        explain = DERMXDB_IMAGES * (per["CAMs, 22 targets (benchmark explain)"] + per["benchmark scoring"])
        for label, key in (("DermX", "train step, DermX"), ("DermX+", "train step, DermX+ (guided attention)")):
            train = FOLDS * args.epochs * train_images * per[key]
            rows.append((f"(a) DermX study, {label} on {c.backbone}: 5-fold training + CAMs + benchmark",
                         train + explain))
    metric_images = LeaderboardConfig().n_images
    mean = sum(leaderboard_seconds(c, args.test_images, metric_images) for c in costs) / len(costs)
    rows.append((f"(b) follow-up leaderboard: {ARCHITECTURES} architectures × {METHODS} methods", ARCHITECTURES * mean))
    every = sum(leaderboard_seconds(c, args.test_images, args.test_images) for c in costs) / len(costs)
    rows.append((f"(b') the same, faithfulness/sanity/robustness on all {args.test_images} test images",
                 ARCHITECTURES * every))
    assumptions = [
        f"(a) {DERMXDB_IMAGES} images, {FOLDS} folds, each fold trains on {train_images:.0f} images for "
        f"{args.epochs} epochs (--epochs; an assumption, not the paper's recorded schedule); validation passes, "
        "data loading and checkpointing not counted; every image explained (22 Grad-CAMs) and scored once, "
        "by the fold that held it out; the rater-agreement ceiling not counted",
        f"(b) one trained model per architecture (training not counted); the {ARCHITECTURES} architectures cost on "
        f"average the mean of the measured backbones ({', '.join(c.backbone for c in costs)}); agreement on "
        f"{args.test_images} test images (--test-images; Score-CAM on the first {LeaderboardConfig().score_images}), "
        f"faithfulness/sanity/robustness on LeaderboardConfig().n_images = {metric_images} images",
        "Score-CAM maps are computed 1 + mprt_steps + sensitivity_samples times per image (trained, cascade "
        "positions, noise draws); its deletion/ROAD/FC share is one measured method's; gradient methods that "
        "cannot explain a backbone (CAM needs the layer that feeds pooling) are counted at the others' average "
        "(leaderboard_seconds)",
        "per-image rates measured on a few images: fixed per-model costs are spread over them (upper bounds)",
    ]
    return rows, assumptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--n-images", type=int, default=4, help="images per measured batch")
    parser.add_argument("--backbones", default="resnet50,efficientnet_b4", help="dermx presets (comma-separated)")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads")
    parser.add_argument("--train-steps", type=int, default=3, help="timed training steps after one warm-up")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many interleaved timings")
    parser.add_argument("--measure-scorecam", action="store_true", help="time the Score-CAM engine on one image")
    parser.add_argument("--epochs", type=int, default=50, help="(a): training epochs per fold (an assumption)")
    parser.add_argument("--test-images", type=int, default=DERMXDB_IMAGES, help="(b): test images per model")
    parser.add_argument("--gpu-speedup", type=float, default=None,
                        help="one GPU over this CPU (default: GPU_TRAIN_IMAGES_PER_S / the measured ResNet-50 "
                             "DermX training rate)")
    parser.add_argument("--gpu-efficiency", type=float, default=GPU_EFFICIENCY, help="eight GPUs' efficiency")
    parser.add_argument("--processes-json", type=Path, default=None,
                        help="measured 1→2 process seconds of dermx evaluate, {\"1\": s1, \"2\": s2} "
                             "(process_efficiency); replaces --gpu-efficiency")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(width=160)
    console.print(f"load average at start: {Path('/proc/loadavg').read_text().split()[:3]}; {args.threads} threads; "
                  f"{args.n_images} images at {args.input_size} px; random weights")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        data = synth_set(work / "synth", max(args.n_images, 8), args.input_size)
        costs = []
        for preset in args.backbones.split(","):
            costs.append(measure(preset, args, data, work, console))
            console.print(json.dumps({"backbone": preset, "per_image_s": costs[-1].per_image,
                                      "scorecam": costs[-1].scorecam, "methods": costs[-1].methods}),
                          highlight=False, soft_wrap=True)  # as it goes: a slow second backbone loses nothing
    load = Path("/proc/loadavg").read_text().split()[:3]

    table = Table(title=f"seconds per image, CPU ({args.threads} threads), {args.input_size} px, "
                        f"{args.n_images} images; load average at the end {' '.join(load)}")
    table.add_column("stage")
    for c in costs:
        table.add_column(c.backbone, justify="right")
    for key in costs[0].per_image:
        table.add_row(key, *(f"{c.per_image[key]:.3f}" for c in costs))
    table.add_row("gradient methods that explain", *(str(len(c.methods)) for c in costs))
    table.add_row("Score-CAM map, 22 targets (channels)",
                  *(f"{c.scorecam['map s / image']:.1f} ({c.scorecam['channels']:.0f})" for c in costs))
    console.print(table)
    for c in costs:
        for note in c.notes:
            console.print(f"[{c.backbone}] {note}", highlight=False)

    resnet = next((c for c in costs if c.backbone == "resnet50"), costs[0])
    cpu_train_rate = 1 / resnet.per_image["train step, DermX"]
    speedup = args.gpu_speedup or GPU_TRAIN_IMAGES_PER_S / cpu_train_rate
    measured = process_efficiency(args.processes_json)
    efficiency = measured if measured is not None else args.gpu_efficiency
    rows, assumptions = projection(costs, args)
    assumptions += [
        f"one GPU = this CPU × {speedup:.0f} on every stage (ASSUMED, not measured: "
        + (f"--gpu-speedup {args.gpu_speedup:g}" if args.gpu_speedup else
           f"{GPU_TRAIN_IMAGES_PER_S:.0f} img/s, timm benchmark ResNet-50 224 px A100 AMP training, over this "
           f"CPU's {cpu_train_rate:.2f} img/s ResNet-50 DermX training") + ")",
        f"eight GPUs = one GPU's time / (8 × {efficiency:.2f}) ("
        + (f"measured 1→2 process efficiency from {args.processes_json}" if measured is not None
           else "--gpu-efficiency, ASSUMED; --processes-json FILE puts the measured 1→2 process scaling here")
        + ")",
    ]
    out = Table(title="projection (hours)")
    for column in ("protocol", "this CPU", "1 GPU", "8 GPUs"):
        out.add_column(column, justify="left" if column == "protocol" else "right")
    for label, seconds in rows:
        out.add_row(label, f"{seconds / 3600:.1f}", f"{seconds / speedup / 3600:.2f}",
                    f"{seconds / speedup / (8 * efficiency) / 3600:.3f}")
    console.print(out)
    console.print("assumptions:")
    for line in assumptions:
        console.print(f"- {line}", highlight=False)
    if args.json:
        args.json.write_text(json.dumps({"per_image_s": {c.backbone: c.per_image for c in costs},
                                         "scorecam": {c.backbone: c.scorecam for c in costs},
                                         "projection_cpu_s": dict(rows), "gpu_speedup": speedup,
                                         "eight_gpu_efficiency": efficiency, "assumptions": assumptions,
                                         "load_average": load}, indent=2))


if __name__ == "__main__":
    main()
