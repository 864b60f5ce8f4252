"""A concept-bottleneck (cbm) model beside a demo's DermX: diagnosis F1 without intervention, and with every
characteristic corrected to the raters' majority labels.

For a demo run folder (``dermx demo --out RUN --seed S``), trains ``cbm`` models on the same data, fold
and recipe as the demo's DermX (``DemoConfig.train_config`` with ``dermx_lr``), one per ``--modes``
(joint, sequential, independent), into ``RUN/models/cbm-MODE``, and prints per model, on the fold's test
images: diagnosis macro-F1 of the model as it is (patient bootstrap 95 % CI), and after setting all
characteristics to the majority labels of the image's raters (present when more than half outlined it)
with the model's intervention rule (heads recomputed from the pooled features: one backbone pass). The
demo's DermX and DermX+ are scored the same way when their checkpoints carry an intervention rule.

Usage: ``python benchmarks/cbm_demo.py RUN_DIR [--modes joint,sequential,independent] [--seed S]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch


def corrected_f1(checkpoint: Path, data: Path, seed: int) -> dict[str, Any]:
    """Macro-F1 on the test images of fold 0, as is and with every characteristic set to its majority label."""
    from dermx import vocab
    from dermx.data import load_dermxdb
    from dermx.evaluate.stats import bootstrap_macro_f1, one_hot
    from dermx.models import load_checkpoint
    from dermx.models.checkpoint import intervention_rule
    from dermx.train.datasets import ImageDataset, characteristic_labels, dermxdb_items

    model = load_checkpoint(checkpoint).eval()
    db = load_dermxdb(data, image_dir=data / "images")
    stems = sorted(db.fold(0).test)
    items = dermxdb_items(db, stems, model.config.characteristics)
    loader = torch.utils.data.DataLoader(ImageDataset(items, model.config.input_spec), batch_size=64)
    pooled = []
    with torch.no_grad():
        for batch in loader:
            pooled.append(model.pool(model.forward_features(batch["image"])).flatten(1))
    features = torch.cat(pooled)
    rule = intervention_rule(model.config)
    majority = torch.tensor([characteristic_labels(db, s, model.config.characteristics, "majority") for s in stems],
                            dtype=torch.float64)
    absent, present = torch.tensor(rule.absent).double(), torch.tensor(rule.present).double()
    set_logits = (absent + majority * (present - absent)).float()
    with torch.no_grad():
        plain = model.heads(features)["diagnosis"].argmax(1)
        hidden = model.diagnosis_mlp(features) if model.diagnosis_mlp is not None else None
        corrected = model.diagnosis_out(model.head_input(set_logits, hidden)).argmax(1)
    truth = [model.config.diagnoses[item.diagnosis] for item in items]
    patients = [str(db.images[s].patient) for s in stems]
    out = {}
    for name, predicted in (("as_is", plain), ("all_corrected", corrected)):
        names = [model.config.diagnoses[i] for i in predicted.tolist()]
        ci = bootstrap_macro_f1(one_hot(truth, vocab.DIAGNOSES), one_hot(names, vocab.DIAGNOSES), clusters=patients,
                                n_boot=1000, seed=seed)
        out[name] = {k: ci[k] for k in ("mean", "low", "high")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--modes", default="joint,sequential,independent")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--head-interventions", type=float, default=0.0,
                        help="rate of the sequential head's random interventions (dermx train --head-interventions)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    from dermx.demo.pipeline import DemoConfig
    from dermx.train import fit

    manifest = json.loads((args.run / "manifest.json").read_text())
    demo = DemoConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in manifest["config"]["demo"].items()
                         if k in DemoConfig.__dataclass_fields__ and k != "out"})
    data = args.run / "data"
    rows = {}
    for mode in args.modes.split(","):
        out = args.run / "models" / f"cbm-{mode}"
        config = demo.train_config("cbm", data, args.run / "cache", out).replace(
            bottleneck=mode, head_interventions=args.head_interventions if mode == "sequential" else 0.0,
            progress=False)
        start = time.perf_counter()
        checkpoint = out / "model" if (out / "model").is_dir() else fit(config).checkpoint_dir  # a rerun reuses it
        rows[f"cbm-{mode}"] = {"train_s": time.perf_counter() - start,
                               **corrected_f1(checkpoint, data, args.seed)}
    for kind in ("dermx", "dermx+"):
        checkpoint = args.run / "models" / kind / "model"
        try:
            rows[kind] = corrected_f1(checkpoint, data, args.seed)
        except ValueError as error:  # a checkpoint from before the intervention rule: left out, said why
            rows[kind] = {"note": str(error)}
    for name, row in rows.items():
        print(name, json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
