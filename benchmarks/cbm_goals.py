"""Issue 28's goals, read from demo runs made with ``dermx demo --interventions``: for each run, the concept
bottleneck's diagnosis macro-F1 as is against DermX's, with the paired difference's 95 % CI (both models on
the same test images; patients resampled jointly), its F1 with every characteristic corrected to the raters'
majority (k = all of the intervention curve), and the curve's rise F1(k_max) − F1(0) with its CI, all from
the run's ``images.csv`` and ``summary.json``. Prints a Markdown table, with several runs also their pooled
mean (:func:`pooled`), and one verdict per goal.

Goals: as is within 0.03 of DermX (the point estimate); corrected ≥ 0.97; the rise's CI above 0.

Usage: ``python benchmarks/cbm_goals.py RUN_DIR [RUN_DIR ...] [--bottleneck CBM] [--reference DermX]
[--n-boot 1000]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def paired_f1_difference(images: pd.DataFrame, model: str, reference: str, *, n_boot: int,
                         seed: int) -> dict[str, Any]:
    """Macro F1 of ``model`` minus ``reference`` on the images both answered, with a patient bootstrap CI
    (the same resamples for both: a paired comparison)."""
    from dermx import vocab
    from dermx.evaluate.stats import from_resamples, macro_f1_of, one_hot, with_sample

    a = images[images["model"] == model].set_index("stem")
    b = images[images["model"] == reference].set_index("stem")
    stems = sorted(set(a.index) & set(b.index))
    if len(stems) != len(a) or len(stems) != len(b):
        raise ValueError(f"{model} and {reference} answered different images ({len(a)} and {len(b)})")
    truth = one_hot(list(a.loc[stems, "reference"]), vocab.DIAGNOSES)
    f1_a = macro_f1_of(truth, one_hot(list(a.loc[stems, "predicted"]), vocab.DIAGNOSES))
    f1_b = macro_f1_of(truth, one_hot(list(b.loc[stems, "predicted"]), vocab.DIAGNOSES))
    clusters = [str(p) for p in a.loc[stems, "patient"]]
    values = with_sample(lambda counts: f1_a(counts) - f1_b(counts), len(stems), clusters=clusters,
                         n_boot=n_boot, seed=seed)
    return dict(from_resamples(values, unit="patient", n=len(stems)))


def ci(estimate: dict[str, Any], signed: bool = False) -> str:
    from dermx.report.verdict import Estimate

    found = Estimate.of(estimate)
    return "–" if found is None else found.signed() if signed else str(found)


def pooled(estimates: list[dict[str, Any]]) -> dict[str, float]:
    """The mean of independent runs' estimates with a normal-approximation 95 % CI: each run's standard error
    read from its bootstrap CI as (high − low) / (2 · 1.96), the mean's as √(Σ se²) / n."""
    means = np.array([e["mean"] for e in estimates])
    se = np.array([(e["high"] - e["low"]) / (2 * 1.959964) for e in estimates])
    mean, half = float(means.mean()), 1.959964 * float(np.sqrt((se ** 2).sum())) / len(estimates)
    return {"mean": mean, "low": mean - half, "high": mean + half}


def run_row(run: Path, bottleneck: str, reference: str, n_boot: int) -> dict[str, Any]:
    summary = json.loads((run / "summary.json").read_text())
    models = summary["interventions"]["models"]
    images = pd.read_csv(run / "images.csv")
    curve, ref = models[bottleneck]["curves"]["uncertain"], models[reference]["curves"]["uncertain"]
    seed = json.loads((run / "manifest.json").read_text())["config"]["demo"]["seed"]
    return {"run": run.name, "seed": seed,
            "reference": ref[0]["macro_f1"], "as_is": curve[0]["macro_f1"],
            "difference": paired_f1_difference(images, bottleneck, reference, n_boot=n_boot, seed=0),
            "corrected": curve[-1]["macro_f1"], "k": curve[-1]["k"], "gain": models[bottleneck]["gain"]["macro_f1"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--bottleneck", default="CBM")
    parser.add_argument("--reference", default="DermX")
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()
    rows = [run_row(run, args.bottleneck, args.reference, args.n_boot) for run in args.runs]
    print(f"| seed | {args.reference} F1 as is | {args.bottleneck} F1 as is | {args.bottleneck} − {args.reference} "
          f"(paired) | {args.bottleneck} F1, all corrected | F1(all) − F1(0) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {ci(r['reference'])} | {ci(r['as_is'])} | {ci(r['difference'], True)} | "
              f"{ci(r['corrected'])} (k = {r['k']}) | {ci(r['gain'], True)} |")
    if len(rows) > 1:
        print(f"| pooled ({len(rows)} runs) | | | {ci(pooled([r['difference'] for r in rows]), True)} | "
              f"{ci(pooled([r['corrected'] for r in rows]))} | {ci(pooled([r['gain'] for r in rows]), True)} |")
        print("(pooled: the mean of the runs' figures; its CI from their bootstrap CIs, normal approximation)")
    goals = {"as is within 0.03 of the reference": [r["difference"]["mean"] >= -0.03 for r in rows],
             "corrected F1 >= 0.97": [r["corrected"]["mean"] >= 0.97 for r in rows],
             "the curve rises (CI above 0)": [r["gain"]["low"] > 0 for r in rows]}
    for goal, met in goals.items():
        print(f"{goal}: met on {int(np.sum(met))} of {len(rows)} runs "
              f"({', '.join(str(r['seed']) for r, m in zip(rows, met, strict=True) if not m) or 'none'} missed)")


if __name__ == "__main__":
    main()
