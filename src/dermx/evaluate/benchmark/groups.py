"""Diagnosis and explanations per group of images (``summary["groups"]``): each skin tone's figures and
its gap to the rest of the model's test images.

For each model and each value of :data:`GROUP_BY` (DermXDB's ``skin_tone``; images without one form the
group ``unknown``):

- ``images`` and ``patients``;
- ``accuracy`` (mean of the 0/1 correctness), ``macro_f1`` (diagnosis), ``dice`` and ``pointing`` (the
  model's headline maps, kind and selection of pairs as in the headline table, image means), each an
  estimate with its bootstrap 95 % CI over the group's patients (:mod:`dermx.evaluate.stats`);
- ``gap``: per score, ``θ(group) − θ(rest)`` with the rest every other test image of the model, its CI
  from resampling the patients of all the model's images at once, both sides recomputed on each resample
  (:func:`dermx.evaluate.stats.group_gap`). The k gaps of one score of one model are a family: each CI is
  at the Bonferroni level ``1 − 0.05/k`` (``level``), so that "every gap whose CI excludes 0" (the
  report's verdict) holds at 95 % for the k groups together.

With one group only there is no rest: its gaps are undefined (NaN).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dermx import vocab
from dermx.evaluate.stats import (
    Clusters,
    bonferroni,
    bootstrap_macro_f1,
    estimate,
    group_gap,
    image_means,
    macro_f1_of,
    one_hot,
    weighted_mean,
)

#: The image attribute the groups are values of (a column of the images table).
GROUP_BY = "skin_tone"
#: The scores of each group, in the order of the report's table.
GROUP_SCORES: tuple[str, ...] = ("accuracy", "macro_f1", "dice", "pointing")


def _patients(stems: pd.Series, clusters: Clusters) -> list[str]:
    return list(stems) if clusters is None else [str(clusters.get(s, s)) for s in stems]


def model_groups(images: pd.DataFrame, pairs: pd.DataFrame, kind: str, *, clusters: Clusters, n_boot: int,
                 seed: int) -> dict[str, Any]:
    """One model's groups (module docstring): ``images`` its rows of the images table, ``pairs`` its
    selected rows of the items table of map ``kind``."""
    mine = images.sort_values("stem", kind="stable").reset_index(drop=True)
    patients = _patients(mine["stem"], clusters)
    boot = {"n_boot": n_boot, "seed": seed}
    pairs = pairs[pairs["kind"] == kind]
    series = {"accuracy": mine["correct"].astype(float).to_numpy(),
              **{score: image_means(pairs, score).reindex(mine["stem"]).to_numpy(dtype=float)
                 for score in ("dice", "pointing")}}
    truth, predicted = one_hot(mine["reference"], vocab.DIAGNOSES), one_hot(mine["predicted"], vocab.DIAGNOSES)
    statistics = {"accuracy": weighted_mean(series["accuracy"]), "macro_f1": macro_f1_of(truth, predicted),
                  "dice": weighted_mean(series["dice"]), "pointing": weighted_mean(series["pointing"])}
    names = sorted(mine[GROUP_BY].astype(str).unique())
    level = bonferroni(len(names))
    out: dict[str, Any] = {}
    for name in names:
        inside = (mine[GROUP_BY].astype(str) == name).to_numpy()
        part = mine[inside]
        per_image = pd.DataFrame({"stem": part["stem"], **{s: v[inside] for s, v in series.items()}})
        out[name] = {
            "images": int(inside.sum()), "patients": len(set(np.asarray(patients, dtype=object)[inside])),
            "accuracy": estimate(per_image, "accuracy", clusters=clusters, **boot),
            "macro_f1": bootstrap_macro_f1(truth[inside], predicted[inside],
                                           clusters=list(np.asarray(patients, dtype=object)[inside]), **boot),
            **{s: estimate(pairs[pairs["stem"].isin(set(part["stem"]))], s, clusters=clusters, **boot)
               for s in ("dice", "pointing")},
            "gap": {s: group_gap(statistics[s], inside, clusters=patients, level=level, **boot)
                    for s in GROUP_SCORES},
        }
    return {"kind": kind, "level": level, "groups": out}


def group_summary(images: pd.DataFrame, selected: pd.DataFrame, kinds: dict[str, str], *, clusters: Clusters,
                  n_boot: int, seed: int) -> dict[str, Any]:
    """``summary["groups"]``: ``{"by", "models": {model: model_groups}}`` (module docstring); ``selected``
    the headline selection of the items table, ``kinds`` each model's headline map kind."""
    return {"by": GROUP_BY, "scores": list(GROUP_SCORES),
            "models": {str(model): model_groups(mine, selected[selected["model"] == model], kinds[str(model)],
                                                clusters=clusters, n_boot=n_boot, seed=seed)
                       for model, mine in images.groupby("model", sort=False)}}
