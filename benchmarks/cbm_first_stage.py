"""Which first stage, and which rate of random interventions, should a demo's concept bottleneck take? Chosen
on **validation** images only.

For each demo run (``dermx demo --profiles distinct --seed S --out RUN``) and each of its trained models named
with ``--stages`` (``dermx``, ``dermx+``, or a ``cbm`` trained on the characteristics alone), the bottleneck
the training code would make from it (:func:`dermx.train.bottleneck.bottleneck_from`: its backbone and
characteristic head unchanged) gets its rule and head fitted as training does, on the run's training split
(:func:`~dermx.train.interventions.fit_rule`, :func:`~dermx.train.bottleneck.head_inputs`,
:func:`~dermx.train.bottleneck.fit_head`, the run's seed), once per rate of ``--rates``. Printed: the
validation split's diagnosis macro-F1 as is and with every characteristic set to the raters' majority
label by the rule. No test image is read.

Usage: ``python benchmarks/cbm_first_stage.py RUN [RUN ...] [--stages dermx,dermx+,cbm] [--rates 0,0.25,0.5]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def validation_scores(run: Path, stage: str, rates: list[float]) -> list[tuple[float, float, float]]:
    """``(rate, F1 as is, F1 all corrected)`` on the validation split, per rate."""
    from sklearn.metrics import f1_score

    from dermx.data import load_dermxdb
    from dermx.models import load_checkpoint
    from dermx.train.bottleneck import bottleneck_from, fit_head, head_inputs
    from dermx.train.calibrate import head_logits
    from dermx.train.config import TrainConfig
    from dermx.train.datamodule import DermXDataModule
    from dermx.train.datasets import characteristic_labels
    from dermx.train.interventions import fit_rule

    folder = run / "models" / stage
    config = TrainConfig.from_dict(json.loads((folder / "config.json").read_text()), strict=False)
    first = load_checkpoint(folder / "model")
    model = bottleneck_from(first, "sequential").eval()
    data = DermXDataModule(config, model.config)
    data.setup()
    training = fit_rule(model, data.dataset("train", augment=False), 64)
    assert training is not None
    val = data.dataset("val", augment=False)
    logits, truth = head_logits(model, val, 64)
    db = load_dermxdb(run / "data", image_dir=run / "data" / "images")
    names = model.config.characteristics
    majority = torch.tensor([characteristic_labels(db, item.key, names, "majority") for item in val.items],
                            dtype=torch.float64)
    absent = torch.tensor(training.rule.absent, dtype=torch.float64)
    present = torch.tensor(training.rule.present, dtype=torch.float64)
    as_is, corrected = logits["characteristic"].double(), absent + majority * (present - absent)
    rows = []
    for rate in rates:
        x, y = head_inputs(model, training, "sequential", interventions=rate, seed=config.run.seed)
        w, b = fit_head(x, y, len(model.config.diagnoses))
        rows.append((rate, *(float(f1_score(truth, (model.head_input(z) @ w.T + b).argmax(1), average="macro"))
                             for z in (as_is, corrected))))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--stages", default="dermx,dermx+,cbm")
    parser.add_argument("--rates", default="0,0.25,0.5")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rates = [float(r) for r in args.rates.split(",")]
    print("| run | first stage | rate | validation F1 as is | all corrected |")
    print("|---|---|---:|---:|---:|")
    for run in args.runs:
        for stage in args.stages.split(","):
            for rate, as_is, corrected in validation_scores(run, stage, rates):
                print(f"| {run.name} | {stage} | {rate:g} | {as_is:.3f} | {corrected:.3f} |", flush=True)


if __name__ == "__main__":
    main()
