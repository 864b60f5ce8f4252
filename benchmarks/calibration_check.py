"""Does temperature scaling fitted on a demo's validation split lower the test ECE?

For each model of a demo run (``RUN_DIR/models/NAME`` with its ``config.json`` and ``model``), the data
module of its training run is rebuilt (same splits), the checkpoint gives diagnosis logits on the
validation and test images, and three calibrations are compared on the test images, all fitted on the
validation images only:

- ``softmax(z)``: no temperature;
- ``always``: the NLL-fitted temperature, always applied (the rule before the cross-fitted check);
- ``checked``: :func:`dermx.trust.fitted.fit_model_calibration` (the temperature applied only when its
  cross-fitted ECE over patient folds of the validation split beats T = 1; per skin tone the same).

It prints per model the temperatures, the check's two validation ECEs and the test ECE (15 equal-width
bins) of each calibration with its 95 % CI over patients, and the goal's ratio (after / before).

First it prints the ECE's noise floor: the ECE of a *perfectly calibrated* model (confidence
``c ~ Beta(8, 1)``, mean 0.89, right with probability ``c``) on 88, 188 and 1,000 images, mean and 5–95 %
range over 300 draws: what a test fold of that size reads for a model that needs no calibration.

Usage: ``python benchmarks/calibration_check.py [RUN_DIR ...] [--n-boot 1000] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch


def _logits(run: Path, name: str) -> dict[str, Any]:
    from dermx.models.checkpoint import load_checkpoint
    from dermx.train.calibrate import diagnosis_logits, skin_tones
    from dermx.train.collection import collection_of
    from dermx.train.config import load_config
    from dermx.train.datamodule import DermXDataModule

    folder = run / "models" / name
    config = load_config(folder / "config.json")
    model = load_checkpoint(folder / "model")
    data = DermXDataModule(config, model.config, collection_of(config))
    data.setup()
    out: dict[str, Any] = {}
    for part in ("val", "test"):
        dataset = data.dataset(part, augment=False)
        z, y = diagnosis_logits(model, dataset, config.optim.batch_size)
        keys = [item.key for item in dataset.items]
        out[part] = {"z": z.double(), "y": y, "tones": skin_tones(data.db, keys),
                     "patients": [item.group for item in dataset.items]}
    return out


def check(run: Path, name: str, n_boot: int) -> dict[str, Any]:
    from dermx.trust.calibration import calibration_report, fit_temperature, scaled_probs
    from dermx.trust.fitted import fit_model_calibration

    parts = _logits(run, name)
    val, test = parts["val"], parts["test"]
    always = fit_temperature(val["z"], val["y"]).temperature
    checked = fit_model_calibration(val["z"], val["y"], val["tones"], patients=val["patients"])
    probabilities = {"softmax": scaled_probs(test["z"], 1.0), "always": scaled_probs(test["z"], always),
                     "checked": checked.probabilities(test["z"], test["tones"])}
    ece = {}
    for key, p in probabilities.items():
        interval = calibration_report(p, test["y"], clusters=test["patients"], n_boot=n_boot, seed=0)["all"]["ece"]
        ece[key] = {"estimate": interval.estimate, "low": interval.low, "high": interval.high}
    return {"run": str(run), "model": name, "validation_images": len(val["y"]), "test_images": len(test["y"]),
            "temperature_always": always, "temperature_checked": checked.temperature,
            "group_temperatures_checked": checked.group_temperatures, "checks": checked.temperature_checks,
            "test_ece": ece}


def noise_floor(n: int, draws: int = 300, seed: int = 0) -> tuple[float, float, float]:
    """Mean, 5th and 95th percentile of the ECE of a perfectly calibrated 6-class model on ``n`` images."""
    import numpy as np

    from dermx.trust.calibration import ece

    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        confidence = rng.beta(8, 1, n)
        right = rng.uniform(size=n) < confidence
        p = np.repeat(((1 - confidence) / 5)[:, None], 6, axis=1)
        p[:, 0] = confidence
        values.append(ece(p, np.where(right, 0, rng.integers(1, 6, n))))
    low, high = np.percentile(values, [5, 95])
    return float(np.mean(values)), float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    for n in (88, 188, 1000):
        mean, low, high = noise_floor(n)
        print(f"ECE of a perfectly calibrated model on {n} images: {mean:.3f} (5-95 %: {low:.3f}-{high:.3f})")
    rows = [check(run, path.name, args.n_boot) for run in args.runs
            for path in sorted((run / "models").iterdir()) if (path / "model").is_dir()]
    for r in rows:
        e, c = r["test_ece"], r["checks"]["all"]
        cross = "n/a" if c["ece_cross_fitted"] is None else f"{c['ece_cross_fitted']:.3f}"
        print(f"{r['run']} {r['model']}: {r['validation_images']} val / {r['test_images']} test images; "
              f"T fitted {r['temperature_always']:.3f}, check on val: ECE {c['ece_baseline']:.3f} at T=1 vs "
              f"{cross} cross-fitted -> T {r['temperature_checked']:.3f} "
              f"(per tone {r['group_temperatures_checked'] or 'none'})")
        for key, v in e.items():
            print(f"    test ECE {key:8s} {v['estimate']:.3f} [{v['low']:.3f}, {v['high']:.3f}]  "
                  f"ratio to softmax {v['estimate'] / e['softmax']['estimate']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, allow_nan=False))


if __name__ == "__main__":
    main()
