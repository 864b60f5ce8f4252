"""What correcting characteristics does to a demo's models: ``dermx evaluate --interventions`` on models trained
before checkpoints recorded an intervention rule.

For each model of a demo run (``RUN_DIR/models/NAME`` with its ``config.json`` and ``model``) whose checkpoint
carries no intervention rule, the data module of its training run is rebuilt (same splits), the rule is
fitted on its training images without augmentation (:func:`dermx.train.interventions.fit_rule`, what training
now does at its end) and the checkpoint with the rule is written to ``OUT/models/NAME`` (the demo's own folder
is not changed); a checkpoint with a rule is used as it is. The benchmark then runs
on each model's test images with ``--interventions`` (no rater agreement, examples or shortcut test) into
``OUT/eval``, the report is rendered there, and the section's sentences are printed.

Usage: ``python benchmarks/intervention_check.py RUN_DIR OUT [--models dermx,dermx+] [--n-boot 1000]
[--n-intervention-draws 20]`` (default: every model of the run).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def with_rule(run: Path, name: str, out: Path) -> Path:
    """``RUN_DIR/models/NAME``'s checkpoint if it carries an intervention rule; else a copy in ``out`` with one
    fitted on its training images."""
    from dermx.models import load_checkpoint, save_checkpoint
    from dermx.train.collection import collection_of
    from dermx.train.config import load_config
    from dermx.train.datamodule import DermXDataModule
    from dermx.train.interventions import fit_rule

    folder = run / "models" / name
    model = load_checkpoint(folder / "model")
    if model.config.interventions is not None:
        return folder / "model"
    config = load_config(folder / "config.json")
    data = DermXDataModule(config, model.config, collection_of(config))
    data.setup()
    fitted = fit_rule(model, data.dataset("train", augment=False), config.optim.batch_size)
    model.config.interventions = fitted.rule.to_dict() if fitted is not None else None
    return save_checkpoint(model, out / "models" / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--models", help="comma-separated model names (default: every model of the run)")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--n-intervention-draws", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(2)

    from dermx.data import load_dermxdb
    from dermx.evaluate.benchmark.config import BenchmarkConfig
    from dermx.evaluate.pipeline import run_evaluation
    from dermx.report import render_report
    from dermx.report.intervention_section import model_sentences
    from dermx.train.config import load_config

    names = (args.models.split(",") if args.models else
             sorted(p.name for p in (args.run / "models").iterdir() if (p / "model").is_dir()))
    models = [(name, with_rule(args.run, name, args.out)) for name in names]
    dataset = load_config(args.run / "models" / names[0] / "config.json").dataset
    db = load_dermxdb(dataset.data, image_dir=dataset.images, check_mask_sizes=False)
    config = BenchmarkConfig(n_boot=args.n_boot, agreement=False, examples=False, shortcut_test=False,
                             interventions=True, intervention_draws=args.n_intervention_draws)
    evaluation = run_evaluation(db, models, args.out / "eval", benchmark=config, say=print)
    print(f"report: {render_report(args.out / 'eval')}")
    block = evaluation.benchmark.summary["interventions"]
    for model in block["models"]:
        for sentence in model_sentences(evaluation.benchmark.summary, model):
            print(sentence)
    for model, why in block["skipped"].items():
        print(f"not measured: {model}: {why}")


if __name__ == "__main__":
    main()
