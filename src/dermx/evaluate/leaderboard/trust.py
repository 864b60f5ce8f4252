"""Which explanation to trust, per model: methods that give the same maps merged, then ranked by paired tests.

**Same maps.** Two methods coincide on a model when every trained map of the leaderboard's images, every
target, differs by at most :data:`SAME` after normalisation: on a network whose CAM layer feeds global
average pooling and a linear head, Grad-CAM, XGrad-CAM, HiRes-CAM and CAM are one map (the gradient is
constant over the grid). Their rows are one row, named with all of them (``same_maps``). Methods whose
maps differ by at most :data:`NEAR` are said to be nearly the same, with the largest difference, but
keep their rows.

**Ranking.** For each criterion (:data:`CRITERIA`: agreement with the experts, characteristic-map Dice,
higher is better; faithfulness, deletion AUC, lower; sanity, MPRT Spearman after the whole cascade,
lower: the map must change when the model is randomised), the method with the best mean is compared
with each other method by the paired bootstrap over patients of their per-image values, Bonferroni
over the comparisons of that criterion: a method whose difference CI includes 0 is *tied* with the
best. A method *to trust* is among the best on all three; when none is, the verdict names the best of
each. A CI that rests on fewer than :data:`FEW` images is flagged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
from torch import Tensor

from dermx.evaluate.stats import Clusters, bonferroni, paired_difference

#: Largest difference of two methods' normalised maps (values in [0, 1]) for them to be one map.
SAME = 1e-4
#: Largest difference for two methods to be *nearly* the same map.
NEAR = 0.02
#: A CI resting on fewer images is flagged.
FEW = 30
#: Criterion → (column, ``higher`` or ``lower`` is better, plain name).
CRITERIA: dict[str, tuple[str, str, str]] = {
    "agreement": ("dice", "higher", "agreement with the experts (Dice)"),
    "faithfulness": ("deletion_auc", "lower", "faithfulness (deletion AUC)"),
    "sanity": ("mprt_spearman", "lower", "sanity (similarity after randomising the model)"),
}


def map_differences(maps: dict[str, Tensor]) -> dict[tuple[str, str], float]:
    """The largest absolute difference of the maps of every two methods (``(B, T, H, W)`` each)."""
    names = list(maps)
    return {(a, b): float((maps[a] - maps[b]).abs().max()) if maps[a].numel() else 0.0
            for i, a in enumerate(names) for b in names[i + 1:]}


def same_groups(methods: Sequence[str], differences: Sequence[dict[tuple[str, str], float]]) -> list[list[str]]:
    """Methods whose maps coincide on every fold (``differences`` of each fold), grouped in method order."""
    groups: list[list[str]] = []
    for method in methods:
        for group in groups:
            if all(d.get((group[0], method), d.get((method, group[0]), math.inf)) <= SAME for d in differences):
                group.append(method)
                break
        else:
            groups.append([method])
    return groups


def near_pairs(groups: list[list[str]],
               differences: Sequence[dict[tuple[str, str], float]]) -> list[tuple[str, str, float]]:
    """Heads of groups whose maps differ by at most :data:`NEAR` (with the largest difference)."""
    heads = [g[0] for g in groups]
    out = []
    for i, a in enumerate(heads):
        for b in heads[i + 1:]:
            worst = max(d.get((a, b), d.get((b, a), math.inf)) for d in differences)
            if worst <= NEAR:
                out.append((a, b, worst))
    return out


def rank(values: dict[str, pd.DataFrame], direction: str, clusters: Clusters, n_boot: int, seed: int) -> dict[str, Any]:
    """One criterion: ``values`` maps each method to per-image rows (``stem``, ``value``); the best method by
    mean, and for each other the paired difference (other − best) at the Bonferroni level."""
    means = {m: float(v["value"].mean()) for m, v in values.items() if v["value"].notna().any()}
    if not means:
        return {"best": None, "tied": [], "worse": [], "differences": {}}
    pick = max if direction == "higher" else min
    best = pick(means, key=lambda m: means[m])
    others = [m for m in means if m != best]
    level = bonferroni(len(others))
    differences = {m: paired_difference(values[m], values[best], "value", clusters=clusters, level=level,
                                        n_boot=n_boot, seed=seed) for m in others}
    tied = [m for m, d in differences.items() if not (d["low"] > 0 or d["high"] < 0)]
    return {"best": best, "tied": [best, *tied], "worse": [m for m in others if m not in tied],
            "means": means, "differences": differences, "level": level}


def verdict(ranks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The methods to trust for one model (module docstring) from its :func:`rank` per criterion."""
    tied = [set(r["tied"]) for r in ranks.values() if r["best"] is not None]
    trusted = sorted(set.intersection(*tied)) if tied and len(tied) == len(CRITERIA) else []
    return {"trusted": trusted, "criteria": ranks}


def sentence(model: str, result: dict[str, Any], names: dict[str, str]) -> str:
    """The verdict of one model in words; ``names`` gives each method's row name (merged methods)."""
    parts = []
    for criterion, r in result["criteria"].items():
        if r["best"] is None:
            parts.append(f"{CRITERIA[criterion][2]}: undefined")
            continue
        ties = [names.get(m, m) for m in r["tied"]]
        text = f"{CRITERIA[criterion][2]}: best {', '.join(ties)}" + (
            " (tied: their paired CIs include 0)" if len(ties) > 1 else "")
        if r["worse"]:
            text += f"; below: {', '.join(names.get(m, m) for m in r['worse'])}"
        parts.append(text)
    trusted = [names.get(m, m) for m in result["trusted"]]
    head = (f"{model}: trust {', '.join(trusted)}, among the best on all three criteria" if trusted else
            f"{model}: no method is among the best on all three criteria")
    return head + ". " + "; ".join(parts) + "."
