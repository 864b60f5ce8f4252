"""Training throughput: Lightning vs a bare PyTorch loop, DermX+ vs DermX; optional accuracy run.

Throughput (default): the same model, the same in-memory batches, the same process, side by side:

- ``bare``: forward, CE + BCE, backward, AdamW step, in a plain loop;
- ``lightning``: :class:`dermx.train.DermXModule` driven by a Lightning Trainer (logging on);
- ``dermx`` vs ``dermx+`` steps: the module's own loss step in a bare loop, without and with the
  guided-attention loss (Grad-CAM of every characteristic in one batched backward, double backward).

Accuracy (``--accuracy``): generate the demo's synthetic DermXDB (fixed seed), train ``dermx`` and
``dermx+`` with the demo's recipe (``DemoConfig`` defaults; options override) on fold 0's training
part (model selection on an inner patient-grouped split), and report diagnosis and
characteristic-identification macro-F1 on fold 0's held-out test images. Characteristic F1 is scored
against three references: the training labels' rule (``any``: outlined by ≥ 1 rater, or ``majority``),
the other rule, and the synthetic set's known answer (a characteristic is present when it was drawn).
The ``oracle`` row scores the known answer itself against each reference: the ceiling that rater
noise (confusions, spurious outlines) leaves to any model.

    python benchmarks/train_throughput.py --steps 20 --json out.json
    python benchmarks/train_throughput.py --accuracy                 # the demo's recipe, both models
    python benchmarks/train_throughput.py --accuracy --n-images 6000 --height 128 --width 152 \
        --input-size 112 --epochs 10                               # the larger recipe of BENCHMARKS.md
    python benchmarks/train_throughput.py --accuracy --kinds dermx+ --n-images 6000 --height 128 --width 152 \
        --input-size 112 --epochs 16                               # DermX+ reaching the issue's targets
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from sklearn.metrics import f1_score

from dermx.demo.pipeline import DemoConfig
from dermx.models import build_model
from dermx.train import DermXModule, TrainConfig

Batch = dict[str, torch.Tensor]


def make_batches(n: int, batch_size: int, size: int, seed: int = 0) -> list[Batch]:
    generator = torch.Generator().manual_seed(seed)
    return [{"image": torch.randn(batch_size, 3, size, size, generator=generator),
             "diagnosis": torch.randint(0, 6, (batch_size,), generator=generator),
             "characteristics": (torch.rand(batch_size, 16, generator=generator) > 0.7).float(),
             "maps": torch.rand(batch_size, 16, size, size, generator=generator)} for _ in range(n)]


def module_for(kind: str, size: int, lr: float = 5e-4, preset: str = "small") -> DermXModule:
    torch.manual_seed(0)
    model = build_model(preset, kind=kind, input_size=(size, size), pretrained=False)  # type: ignore[arg-type]
    config = TrainConfig.of(kind=kind, input_size=(size, size), pretrained=False, lr=lr, progress=False)  # type: ignore[arg-type]
    return DermXModule(model, config)


def time_loop(step: Callable[[Batch], torch.Tensor], params: list[torch.nn.Parameter], batches: list[Batch],
              warmup: int) -> float:
    """Seconds for the batches after ``warmup``: step, zero_grad, backward, AdamW update."""
    optimizer = torch.optim.AdamW(params, lr=5e-4)
    start = 0.0
    for i, batch in enumerate(batches):
        if i == warmup:
            start = time.perf_counter()
        loss = step(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def bare_step(module: DermXModule) -> Callable[[Batch], torch.Tensor]:
    model = module.model

    def step(batch: Batch) -> torch.Tensor:
        out = model(batch["image"])
        loss = F.cross_entropy(out["diagnosis"], batch["diagnosis"])
        if "characteristic" in out:
            loss = loss + F.binary_cross_entropy_with_logits(out["characteristic"], batch["characteristics"])
        return loss

    return step


def module_step(module: DermXModule) -> Callable[[Batch], torch.Tensor]:
    return lambda batch: module._step(batch, create_graph=True)[1].total


class _Clock(Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, 0.0, 0.0

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        self.end = time.perf_counter()


def time_lightning(module: DermXModule, batches: list[Batch], warmup: int) -> float:
    """Seconds for the batches after ``warmup`` inside ``Trainer.fit`` (constant learning rate)."""
    clock = _Clock(warmup)
    trainer = L.Trainer(max_steps=len(batches), accelerator="cpu", devices=1, logger=False, callbacks=[clock],
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        inference_mode=False, limit_val_batches=0, num_sanity_val_steps=0)
    loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False)
    trainer.fit(module, train_dataloaders=loader)
    return clock.end - clock.start


def throughput(args: argparse.Namespace) -> dict[str, float]:
    batches = make_batches(args.warmup + args.steps, args.batch_size, args.input_size)
    images = args.steps * args.batch_size
    times: dict[str, list[float]] = {"bare (dermx)": [], "lightning (dermx)": [], "dermx step": [],
                                     "dermx+ step": []}
    for _ in range(args.repeats):  # interleaved, best of repeats
        for name, kind, run in (("bare (dermx)", "dermx", "bare"), ("lightning (dermx)", "dermx", "lightning"),
                                ("dermx step", "dermx", "module"), ("dermx+ step", "dermx+", "module")):
            module = module_for(kind, args.input_size)
            if run == "lightning":
                seconds = time_lightning(module, batches, args.warmup)
            else:
                step = bare_step(module) if run == "bare" else module_step(module)
                seconds = time_loop(step, list(module.model.parameters()), batches, args.warmup)
            times[name].append(seconds)
    result = {f"{name} img/s": images / min(values) for name, values in times.items()}
    result["lightning / bare throughput"] = result["lightning (dermx) img/s"] / result["bare (dermx) img/s"]
    result["dermx+ / dermx step time"] = result["dermx step img/s"] / result["dermx+ step img/s"]
    print(f"small preset (resnet18), {args.input_size} px, batch {args.batch_size}, {args.steps} timed steps, "
          f"{torch.get_num_threads()} threads, best of {args.repeats}")
    print(f"{'run':<32}{'images/s':>10}")
    for name, value in result.items():
        print(f"{name:<32}{value:>10.3f}")
    return result


def characteristic_references(data: Path, stems: list[str], rule: str) -> dict[str, np.ndarray]:
    """(N, 16) bool references of the test images: the training rule's labels, the other rule's, and
    the known answer (drawn lesions), in ``vocab.CHARACTERISTICS`` order."""
    from dermx import vocab
    from dermx.data import load_dermxdb
    from dermx.data.synth.writer import load_ground_truth
    from dermx.train.datasets import characteristic_labels

    db = load_dermxdb(data, check_mask_sizes=False)
    refs = {name: np.array([characteristic_labels(db, s, vocab.CHARACTERISTICS, name) for s in stems]) > 0.5
            for name in (rule, "majority" if rule == "any" else "any")}
    refs["drawn"] = np.array([load_ground_truth(data, s).flatten(1).any(1).numpy() for s in stems])
    return refs


def char_f1(reference: np.ndarray, predicted: np.ndarray) -> float:
    """Macro-F1 over the characteristics present in the reference (as in training's ``macro_f1``)."""
    present = reference.sum(0) > 0
    return float(f1_score(reference[:, present], predicted[:, present], average="macro", zero_division=0))


def accuracy(args: argparse.Namespace) -> dict[str, float]:
    """Train ``dermx`` and ``dermx+`` with the demo's recipe (:class:`dermx.demo.DemoConfig` defaults
    unless overridden) on fold 0 of a synthetic DermXDB; held-out macro-F1 of each (module docstring)."""
    import logging
    import warnings

    import pandas as pd

    from dermx import vocab
    from dermx.data.synth import SynthConfig, generate_from_config
    from dermx.demo.pipeline import quiet_training
    from dermx.train import fit

    demo = demo_config(args)
    out = Path(args.out)
    synth = out / f"synth_n{demo.images}_{demo.size[0]}x{demo.size[1]}_seed{demo.seed}"
    if not (synth / "metadata.csv").is_file():
        generate_from_config(SynthConfig(n_images=demo.images, seed=demo.seed, size=demo.size, shortcut=demo.shortcut,
                                         n_folds=demo.n_folds, repeat_fraction=0.0), synth, workers=demo.workers)
    print(f"accuracy: {demo.preset} preset, {demo.images} synthetic images ({demo.size[0]}x{demo.size[1]}, seed "
          f"{demo.seed}, watermark on {demo.shortcut}), fold 0 of {demo.n_folds} held out; {demo.input_size} px, "
          f"{demo.epochs} epochs, batch {demo.batch_size}, lr {demo.lr} ({demo.lr_schedule}, warm-up "
          f"{demo.warmup_epochs} epoch), augment {demo.augment}, dropout {demo.dropout}, char_pos_weight "
          f"{demo.char_pos_weight}, labels {args.label_rule}; {torch.get_num_threads()} threads")
    char_names = [f"char:{c}" for c in vocab.CHARACTERISTICS]
    rows: dict[str, dict[str, float]] = {}
    import lightning  # noqa: F401  (configures its loggers on import)

    with quiet_training():
        warnings.filterwarnings("ignore", category=UserWarning, module="lightning")
        logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
        for kind in args.kinds.split(","):
            config = demo.train_config(kind, synth, out / "cache", out / "run" / kind).replace(
                progress=False, label_rule=args.label_rule)
            started = time.perf_counter()
            result = fit(config)
            minutes = (time.perf_counter() - started) / 60
            frame = pd.read_csv(result.predictions)  # type: ignore[arg-type]
            refs = characteristic_references(synth, frame["stem"].tolist(), args.label_rule)
            predicted = frame[char_names].to_numpy() >= 0.5
            rows[kind] = {"dx F1": f1_score(frame["reference"], frame["predicted"], average="macro"),
                          **{f"char F1 ({name})": char_f1(ref, predicted) for name, ref in refs.items()},
                          "val dx F1": result.metrics.get("val/dx_f1", float("nan")), "minutes": minutes}
    rows["oracle"] = {"dx F1": 1.0, **{f"char F1 ({name})": char_f1(ref, refs["drawn"]) for name, ref in refs.items()},
                      "val dx F1": float("nan"), "minutes": float("nan")}
    columns = list(rows["oracle"])
    print(f"  {'model':<8}" + "".join(f"{c:>{len(c) + 2}}" for c in columns))
    for kind, row in rows.items():
        print(f"  {kind:<8}" + "".join(f"{row[c]:>{len(c) + 2}.3f}" for c in columns))
    return {f"{kind} {column}": value for kind, row in rows.items() for column, value in row.items()}


def demo_config(args: argparse.Namespace) -> DemoConfig:
    changes = {"images": args.n_images, "epochs": args.epochs, "lr": args.lr, "input_size": args.input_size,
               "seed": args.seed, "batch_size": args.acc_batch_size, "dropout": args.dropout, "preset": args.preset}
    if args.height is not None or args.width is not None:
        default = DemoConfig().size
        changes["size"] = (args.height or default[0], args.width or default[1])
    if args.augment is not None:
        changes["augment"] = args.augment
    return DemoConfig(**{k: v for k, v in changes.items() if v is not None})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--accuracy", action="store_true", help="run the synthetic accuracy benchmark instead")
    accuracy_options = parser.add_argument_group("--accuracy (default: the demo's recipe, DemoConfig)")
    accuracy_options.add_argument("--kinds", default="dermx,dermx+", help="comma-separated model kinds")
    accuracy_options.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None)
    accuracy_options.add_argument("--lr", type=float, default=None)
    accuracy_options.add_argument("--dropout", type=float, default=None)
    accuracy_options.add_argument("--epochs", type=int, default=None)
    accuracy_options.add_argument("--n-images", type=int, default=None)
    accuracy_options.add_argument("--input-size", type=int, default=None)
    accuracy_options.add_argument("--acc-batch-size", type=int, default=None)
    accuracy_options.add_argument("--seed", type=int, default=None)
    accuracy_options.add_argument("--preset", default=None, help="model preset (default: the demo's)")
    accuracy_options.add_argument("--height", type=int, default=None, help="synthetic image height")
    accuracy_options.add_argument("--width", type=int, default=None, help="synthetic image width")
    accuracy_options.add_argument("--label-rule", default="any", choices=("any", "majority"),
                                  help="characteristic training labels")
    parser.add_argument("--out", default="benchmarks/_train_accuracy")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = accuracy(args) if args.accuracy else throughput(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
