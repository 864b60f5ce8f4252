"""Diagnosis and explanations per group of images (``summary["groups"]``): each group's figures and its gap
to the rest of the model's test images.

The groups are the values of one image attribute ``by``, a column of the images table
(:mod:`dermx.evaluate.image_groups`: DermXDB's ``skin_tone`` by default, or the attribute of a ``--groups``
file; images without a value form the group ``unknown``). For each model and each group:

- ``images`` and ``patients``;
- ``accuracy`` (mean of the 0/1 correctness), ``macro_f1`` (diagnosis), ``dice`` and ``pointing`` (the
  model's headline maps, kind and selection of pairs as in the headline table, image means), each an
  estimate with its bootstrap 95 % CI over the group's patients (:mod:`dermx.evaluate.stats`);
- ``gap``: per score, ``θ(group) − θ(rest)`` with the rest every other test image of the model, its CI
  from resampling the patients of all the model's images at once, both sides recomputed on each resample
  (:func:`dermx.evaluate.stats.group_gap`). The k gaps of one score of one model are a family: each CI is
  at the Bonferroni level ``1 − 0.05/k`` (``level``), so that "every gap whose CI excludes 0" (the
  report's verdict) holds at 95 % for the k groups together.

A score computed elsewhere on some of the same images (the leaderboard's deletion AUC on the first test
images, :func:`score_groups`) joins each group with its own gap (:func:`add_score`); its family is the
groups present among those images. With one group only there is no rest: its gaps are undefined (NaN).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dermx import vocab
from dermx.evaluate.image_groups import GROUP_BY, ImageGroups
from dermx.evaluate.stats import (
    Clusters,
    Estimate,
    bonferroni,
    bootstrap_macro_f1,
    estimate,
    group_gap,
    image_means,
    macro_f1_of,
    one_hot,
    weighted_mean,
)

__all__ = ["GROUP_BY", "GROUP_SCORES", "Partition", "add_score", "group_summary", "model_groups", "score_groups"]

#: The scores of each group, in the order of the report's table.
GROUP_SCORES: tuple[str, ...] = ("accuracy", "macro_f1", "dice", "pointing")


@dataclass(frozen=True)
class Partition:
    """Images split into groups: ``stems`` in the order of the statistics' rows, ``labels`` each one's
    group, ``patients`` each one's patient (the image itself without patient ids)."""

    stems: list[str]
    labels: np.ndarray
    patients: np.ndarray

    @classmethod
    def of(cls, stems: Iterable[str], labels: Iterable[Any], clusters: Clusters) -> Partition:
        stems = [str(s) for s in stems]
        patients = stems if clusters is None else [str(clusters.get(s, s)) for s in stems]
        return cls(stems, np.array([str(label) for label in labels], dtype=object),
                   np.array(patients, dtype=object))

    @property
    def names(self) -> list[str]:
        """The groups, sorted."""
        return sorted(set(self.labels))

    @property
    def level(self) -> float:
        """The level of each gap's CI: Bonferroni over :attr:`names`."""
        return bonferroni(len(self.names))

    def inside(self, name: str) -> np.ndarray:
        return np.asarray(self.labels == name, dtype=bool)

    def counts(self, name: str) -> dict[str, int]:
        inside = self.inside(name)
        return {"images": int(inside.sum()), "patients": len(set(self.patients[inside]))}

    def mean_score(self, rows: pd.DataFrame, score: str, *, clusters: Clusters, n_boot: int,
                   seed: int) -> dict[str, tuple[Estimate, Estimate]]:
        """Per group, ``(estimate, gap)`` of a mean of image means: ``rows`` holds one row per pair or image
        (``stem``, ``score``); the estimate is over the group's images (CI over its patients), the gap
        ``θ(group) − θ(rest)`` over every image of the partition (:func:`~dermx.evaluate.stats.group_gap`
        at :attr:`level`)."""
        statistic = weighted_mean(image_means(rows, score).reindex(self.stems).to_numpy(dtype=float))
        boot = {"n_boot": n_boot, "seed": seed}
        out = {}
        for name in self.names:
            inside = self.inside(name)
            chosen = rows[rows["stem"].isin(set(np.asarray(self.stems, dtype=object)[inside]))]
            out[name] = (estimate(chosen, score, clusters=clusters, **boot),
                         group_gap(statistic, inside, clusters=list(self.patients), level=self.level, **boot))
        return out


def model_groups(images: pd.DataFrame, pairs: pd.DataFrame, kind: str, *, by: str = GROUP_BY, clusters: Clusters,
                 n_boot: int, seed: int) -> dict[str, Any]:
    """One model's groups of the attribute ``by`` (module docstring): ``images`` its rows of the images
    table, ``pairs`` its selected rows of the items table of map ``kind``."""
    mine = images.sort_values("stem", kind="stable").reset_index(drop=True)
    part = Partition.of(mine["stem"], mine[by], clusters)
    boot = {"n_boot": n_boot, "seed": seed}
    pairs = pairs[pairs["kind"] == kind]
    answers = pd.DataFrame({"stem": mine["stem"], "accuracy": mine["correct"].astype(float)})
    means = {"accuracy": part.mean_score(answers, "accuracy", clusters=clusters, **boot),
             **{s: part.mean_score(pairs, s, clusters=clusters, **boot) for s in ("dice", "pointing")}}
    truth, predicted = one_hot(mine["reference"], vocab.DIAGNOSES), one_hot(mine["predicted"], vocab.DIAGNOSES)
    f1 = macro_f1_of(truth, predicted)
    out: dict[str, Any] = {}
    for name in part.names:
        inside = part.inside(name)
        macro_f1 = (bootstrap_macro_f1(truth[inside], predicted[inside], clusters=list(part.patients[inside]), **boot),
                    group_gap(f1, inside, clusters=list(part.patients), level=part.level, **boot))
        figures = {**{s: means[s][name] for s in means}, "macro_f1": macro_f1}
        out[name] = {**part.counts(name), **{s: figures[s][0] for s in GROUP_SCORES},
                     "gap": {s: figures[s][1] for s in GROUP_SCORES}}
    return {"kind": kind, "level": part.level, "groups": out}


def group_summary(images: pd.DataFrame, selected: pd.DataFrame, kinds: dict[str, str], *, by: str = GROUP_BY,
                  clusters: Clusters, n_boot: int, seed: int) -> dict[str, Any]:
    """``summary["groups"]``: ``{"by", "scores", "models": {model: model_groups}}`` (module docstring);
    ``selected`` the headline selection of the items table, ``kinds`` each model's headline map kind."""
    return {"by": by, "scores": list(GROUP_SCORES),
            "models": {str(model): model_groups(mine, selected[selected["model"] == model], kinds[str(model)], by=by,
                                                clusters=clusters, n_boot=n_boot, seed=seed)
                       for model, mine in images.groupby("model", sort=False)}}


def score_groups(rows: pd.DataFrame, score: str, groups: ImageGroups, *, clusters: Clusters, n_boot: int,
                 seed: int) -> dict[str, Any]:
    """One mean-of-image-means ``score`` per group of ``groups`` over the images of ``rows`` (``stem``,
    ``score``; one row per pair or image, e.g. the leaderboard's per-image deletion AUC), in the layout of
    :func:`model_groups`: ``{"level", "groups": {name: {images, patients, score: E, "gap": {score: E}}}}``."""
    stems = sorted(set(rows["stem"]))
    part = Partition.of(stems, groups.labels(stems), clusters)
    figures = part.mean_score(rows, score, clusters=clusters, n_boot=n_boot, seed=seed)
    return {"level": part.level, "groups": {name: {**part.counts(name), score: value, "gap": {score: gap}}
                                            for name, (value, gap) in figures.items()}}


def add_score(block: dict[str, Any], score: str, per_model: Mapping[str, dict[str, Any]],
              about: dict[str, Any]) -> None:
    """Put a score of :func:`score_groups` (``per_model``: model → its figures, same grouping) into
    ``summary["groups"]`` (``block``) beside the others: each group's estimate and gap; ``about`` (what the
    score was computed on) as ``block[score]``. A group the score's images miss gets none."""
    if per_model.keys() - block["models"].keys():
        raise ValueError(f"{score} of models the benchmark did not score: "
                         f"{sorted(per_model.keys() - block['models'].keys())}")
    for model, figures in per_model.items():
        groups = block["models"][model]["groups"]
        for name, entry in figures["groups"].items():
            groups[name][score] = entry[score]
            groups[name]["gap"][score] = entry["gap"][score]
    block["scores"] = [*(s for s in block["scores"] if s != score), score]
    block[score] = about
