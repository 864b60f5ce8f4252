"""Choose the demo's training recipe on the validation split of development seeds, never on test images.

    python benchmarks/demo_recipe.py --seeds 100,101 --out runs/recipe [--json recipe.json]

For each development seed: the demo's synthetic data (``DemoConfig`` defaults otherwise); for each
candidate (model kind, peak learning rate, epochs) one training on fold 0, scored on its own inner
validation split (the images the checkpoint was selected on, ``DermXDataModule``'s ``val`` part),
never on fold 0's test images: characteristic-map Dice against the fused experts (present pairs, mean
of image means) and diagnosis macro-F1. Training time is measured.

The rule, fixed before the runs: per kind, the score the model is in the demo for (DermX+: map Dice;
DermX: diagnosis macro-F1), averaged over the seeds; the best candidate, then among the candidates
within ``--tolerance`` (0.01) of it the one with the fewest epochs (the demo must fit 5 minutes on 2
cores), ties broken by the better score. The chosen recipe is then checked on seeds never used here
(``benchmarks/demo_time.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from itertools import product
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from dermx.data import load_dermxdb
from dermx.data.synth import SynthConfig, generate_from_config
from dermx.demo import DemoConfig
from dermx.evaluate.benchmark.config import BenchmarkConfig
from dermx.evaluate.benchmark.run import run_benchmark
from dermx.evaluate.candidates import load_candidates
from dermx.evaluate.eval_sets import EvalSet
from dermx.models import load_checkpoint
from dermx.train import DermXDataModule, fit
from dermx.train.quiet import quiet_training

#: (kind, peak learning rates, epochs) tried per development seed.
GRID: dict[str, tuple[tuple[float, ...], tuple[int, ...]]] = {
    "dermx+": ((2e-3, 3e-3), (20, 26, 32)),
    "dermx": ((1.2e-3, 3e-3), (20, 26, 32)),
}
#: The score each kind is chosen by.
GOAL = {"dermx+": "val_dice", "dermx": "val_dx_f1"}


def validation_scores(db: Any, checkpoint: Path, train_config: Any) -> dict[str, float]:
    """Map Dice and diagnosis macro-F1 of a checkpoint on its own inner validation images."""
    model = load_checkpoint(checkpoint)
    data = DermXDataModule(train_config, model.config)
    data.setup()
    stems = tuple(item.key for item in data.parts["val"])
    (candidate,) = load_candidates("m", checkpoint, db)
    candidate = dataclasses.replace(candidate, test=EvalSet(stems, "overlap-allowed", note="inner validation split"))
    config = BenchmarkConfig(n_boot=50, agreement=False, examples=False, shortcut_test=False)
    summary = run_benchmark(db, [candidate], config).summary
    dice = summary["localization"]["present"]["m"]["characteristic"]["overall"]["dice"]["mean"]
    return {"val_dice": dice, "val_dx_f1": summary["diagnosis"]["m"]["macro_f1"]["mean"], "val_images": len(stems)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="100,101")
    parser.add_argument("--out", type=Path, default=Path("runs/recipe"))
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    console = Console()
    records: list[dict[str, Any]] = []
    if args.json is not None and args.json.is_file():
        records = json.loads(args.json.read_text())  # resume: runs already done are kept
    done = {(r["seed"], r["kind"], r["lr"], r["epochs"]) for r in records}
    for seed in (int(s) for s in args.seeds.split(",")):
        base = DemoConfig(seed=seed)
        data = args.out / f"seed-{seed}" / "data"
        if not (data / "synth.json").is_file():
            generate_from_config(SynthConfig(n_images=base.images, seed=seed, size=base.size, shortcut=base.shortcut,
                                             n_folds=base.n_folds, repeat_fraction=0.0), data, workers=base.workers)
        db = load_dermxdb(data, image_dir=data / "images", check_mask_sizes=False)
        for kind, (lrs, epochs) in GRID.items():
            for lr, n_epochs in product(lrs, epochs):
                if (seed, kind, lr, n_epochs) in done:
                    continue
                config = dataclasses.replace(base, epochs=n_epochs, lr=lr, dermx_lr=lr)
                out = args.out / f"seed-{seed}" / f"{kind}-lr{lr:g}-e{n_epochs}"
                train = config.train_config(kind, data, args.out / f"seed-{seed}" / "cache", out)
                train = train.replace(progress=False)
                start = time.perf_counter()
                with quiet_training():
                    result = fit(train)
                seconds = time.perf_counter() - start
                record = {"seed": seed, "kind": kind, "lr": lr, "epochs": n_epochs, "train_s": seconds,
                          **validation_scores(db, result.checkpoint_dir, train)}
                records.append(record)
                console.print(record)
                if args.json is not None:
                    args.json.write_text(json.dumps(records, indent=1))
    table = Table(title="demo recipe candidates: mean over development seeds (validation split only)")
    for column in ("kind", "lr", "epochs", "val map Dice", "val dx F1", "train s", "seeds"):
        table.add_column(column, justify="right")
    chosen = {}
    for kind, goal in GOAL.items():
        rows = {}
        for r in (r for r in records if r["kind"] == kind):
            rows.setdefault((r["lr"], r["epochs"]), []).append(r)
        means = {key: {k: sum(r[k] for r in rs) / len(rs) for k in ("val_dice", "val_dx_f1", "train_s")}
                 | {"n": len(rs)} for key, rs in rows.items()}
        best = max(m[goal] for m in means.values())
        near = [key for key, m in means.items() if m[goal] >= best - args.tolerance]
        chosen[kind] = min(near, key=lambda key: (key[1], -means[key][goal]))
        for (lr, n_epochs), m in sorted(means.items()):
            mark = " ←" if (lr, n_epochs) == chosen[kind] else ""
            table.add_row(kind, f"{lr:g}", f"{n_epochs}{mark}", f"{m['val_dice']:.3f}", f"{m['val_dx_f1']:.3f}",
                          f"{m['train_s']:.0f}", str(m["n"]))
    console.print(table)
    console.print({kind: {"lr": lr, "epochs": e} for kind, (lr, e) in chosen.items()})


if __name__ == "__main__":
    main()
