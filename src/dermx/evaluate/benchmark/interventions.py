r"""A clinician in the loop, measured (``dermx evaluate --interventions``): how much a model's diagnosis gains
when its characteristics are corrected, and how much it reads them at all. ``summary["interventions"]`` and
``interventions.csv`` (one row per model, order and k).

**Correcting** characteristic ``j`` of an image sets it to the raters' majority label ``y_j`` (present when
more than half of the image's raters outlined it: :func:`~dermx.train.datasets.characteristic_labels`,
``rule="majority"``, the raters of :attr:`BenchmarkConfig.raters
<dermx.evaluate.benchmark.config.BenchmarkConfig>`) by the model's intervention rule
(:mod:`dermx.models.intervention`): ``z_j ← q95_j`` if ``y_j`` else ``q5_j``, the 95th / 5th percentile of the
model's training logits of ``j`` (a characteristic the model already had right is set too, as a clinician's
confirmation would be). Each test image goes through the backbone once; its pooled features then
feed the heads (``DermXNet.heads``) for every k, order, draw and replacement below, the characteristic
logits replaced per image. The K characteristics corrected are the model's that are DermXDB's (those with
rater labels); a model of its own vocabulary lists the others in ``not_correctable``.

**The curve.** ``F1(k)``, ``k = 0 … K``: diagnosis macro F1 (and accuracy) over the model's test images after
correcting k characteristics of every image, in two orders:

- ``uncertain``: the most uncertain first, the smallest ``|σ(z_j) − ½|``, i.e. the smallest ``|z_j|`` (ties
  in column order);
- ``random``: a random order per image, ``draws`` draws (seeded by the run's seed), F1 the mean over the
  draws (``draw_sd``: their SD on the test images).

``F1(0)`` is the benchmark's own diagnosis macro F1 (``benchmark_differ`` counts the images whose
uncorrected prediction here differs from the images table's: 0 unless float noise flips a near tie); at
``k = K`` both orders have corrected everything.

**Reliance** of the diagnosis on the characteristic logits (all of the model's): diagnosis macro F1 with them

- ``constant``: replaced by the training mean of ``z_j`` (the rule's ``mean``; a mean ablation), the same for
  every image; for a rule written before the mean was kept, by ``(q5_j + q95_j) / 2``, the midpoint of its
  percentiles (``constant`` in the summary says which);
- ``shuffled``: replaced by another test image's (the whole logit vector permuted across the fold's test
  images, ``draws`` permutations, F1 the mean over them): which characteristics go together is kept, their
  link to the image is broken;

and ``drop = F1(plain) − F1(replaced)``. A diagnosis that ignores its characteristics drops exactly 0.

**Intervals**: 95 % percentile bootstrap over patients (:mod:`dermx.evaluate.stats`), one set of resamples
(:func:`~dermx.evaluate.stats.counts_with_sample`, the run's ``n_boot`` and seed) for every k, order and
replacement of a model, so every difference is paired: ``gain = F1(K) − F1(0)``, ``lift`` the change after
``s = min(3, K)`` corrections in each order and uncertain − random there, each ``drop``. The random order's
and the shuffle's value on a resample is the mean over the draws. A model of several folds is pooled per
image, each image with its own fold's network and rule.

A model is measured when every fold is a network (not a stand-in) with characteristics, one of them
DermXDB's, and an intervention rule in its checkpoint; otherwise it is listed in ``skipped`` with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import Tensor
from torch.nn.functional import one_hot

from dermx import vocab
from dermx.data import DermXDB
from dermx.evaluate.benchmark.config import BenchmarkConfig
from dermx.evaluate.benchmark.trust import fold_rows
from dermx.evaluate.candidates import Candidate
from dermx.evaluate.stats import Estimate, counts_with_sample, from_resamples, macro_f1_of, weighted_mean
from dermx.models import DermXNet
from dermx.models.checkpoint import intervention_rule
from dermx.models.intervention import InterventionError, InterventionRule, intervened

__all__ = ["ORDERS", "REPLACEMENTS", "SHOWN_K", "curve_table", "intervention_study"]

#: The orders characteristics are corrected in (module docstring).
ORDERS: tuple[str, ...] = ("uncertain", "random")
#: What the characteristic logits are replaced by to measure reliance (module docstring).
REPLACEMENTS: tuple[str, ...] = ("constant", "shuffled")
#: The report's sentence: what correcting this many characteristics (or all, if fewer) does.
SHOWN_K = 3
#: ``progress(iterable, description, total)``, as the benchmark's.
Progress = Callable[[Iterable[Any], str, int], Iterable[Any]]


@dataclass(frozen=True)
class _Fold:
    """One fold's test images through its network: the reference class and the DermXDB class predicted
    (indices of :data:`dermx.vocab.DIAGNOSES`) without correction, after k corrections in each order
    (``(draws, K + 1, n)``, one draw for ``uncertain``) and with each replacement (``(draws, n)``)."""

    stems: list[str]
    truth: Tensor
    plain: Tensor
    curves: dict[str, Tensor]
    replaced: dict[str, Tensor]


def _why_not(candidate: Candidate) -> str | None:
    """Why ``candidate`` cannot be measured, or ``None``."""
    if candidate.model is None:
        return "a stand-in, not a network: the curve recomputes a network's heads"
    try:
        intervention_rule(candidate.model.config)
    except InterventionError as error:
        return str(error)
    if not candidate.characteristics:
        return (f"none of its characteristics ({', '.join(candidate.names.characteristics)}) is DermXDB's: the "
                "raters give no labels to correct them to")
    return None


def _ranks(order: Tensor) -> Tensor:
    """``rank[i, order[i, r]] = r``: the position of each column in each row's order."""
    return order.argsort(dim=1)


def _corrected(z: Tensor, columns: Tensor, target: Tensor, rank: Tensor) -> Tensor:
    """``(K + 1, n, J)`` logits: for each k, ``z`` with the columns of rank < k set to ``target`` ``(n, K)``."""
    k = torch.arange(columns.numel() + 1)[:, None, None]
    out = z.expand(len(k), *z.shape).clone()
    out[..., columns] = torch.where(rank[None] < k, target[None], z[:, columns][None])
    return out


def _diagnoses(model: DermXNet, pooled: Tensor, z: Tensor, dx_columns: Sequence[int]) -> Tensor:
    """The DermXDB class predicted ``(m, n)`` by the heads from ``pooled`` ``(n, C)`` with characteristic logits
    ``z`` ``(m, n, J)`` (:func:`~dermx.models.intervention.intervened` hands them to the diagnosis head): the
    argmax over the classes the model shares with DermXDB, as :class:`~dermx.evaluate.candidates.CamExplainer`
    reads it."""
    m, n, _ = z.shape
    with intervened(model, z.reshape(m * n, -1)), torch.no_grad():
        logits = model.heads(pooled.repeat(m, 1))["diagnosis"].float().cpu()
    ours = torch.tensor([i for i, c in enumerate(dx_columns) if c >= 0])
    shared = [c for c in dx_columns if c >= 0]
    return ours[logits[:, shared].argmax(dim=1)].reshape(m, n)


def _fold(db: DermXDB, candidate: Candidate, config: BenchmarkConfig, generator: torch.Generator,
          wrap: Progress) -> _Fold:
    """Every prediction of one candidate's test images (module docstring): one backbone pass per image."""
    assert candidate.model is not None
    model: DermXNet = candidate.model
    rule: InterventionRule = intervention_rule(model.config)
    device = next(model.parameters()).device
    batches = candidate.batches(db, batch_size=config.batch_size, annotators=config.raters, rule="majority")
    stems: list[str] = []
    pooled, labels, truth = [], [], []
    for names, batch in wrap(batches, f"interventions: {candidate.label}", len(batches)):
        with torch.no_grad():
            pooled.append(model.pool(model.forward_features(batch["image"].to(device))).flatten(1))
        stems += names
        labels.append(batch["characteristics"].bool())
        truth.append(batch["diagnosis"])
    if not stems:
        nothing = torch.zeros(0, dtype=torch.long)
        return _Fold([], nothing, nothing, {}, {})
    features = torch.cat(pooled)
    with torch.no_grad():
        z = model.heads(features)["characteristic"].float().cpu()
    mapped = candidate.names.dermxdb_characteristics
    columns = torch.tensor([j for j, c in enumerate(mapped) if c in vocab.CHARACTERISTICS])
    majority = torch.cat(labels)[:, [vocab.CHARACTERISTICS.index(mapped[j]) for j in columns.tolist()]]
    present, absent = (torch.tensor(v, dtype=z.dtype) for v in (rule.present, rule.absent))
    target = torch.where(majority, present[columns], absent[columns])
    dx = candidate.names.diagnosis_columns

    def diagnose(variants: Tensor) -> Tensor:
        return _diagnoses(model, features, variants, dx)

    n = len(stems)
    uncertain = _ranks(z[:, columns].abs().argsort(dim=1, stable=True))
    random = [_ranks(torch.rand(n, len(columns), generator=generator).argsort(dim=1))
              for _ in range(config.intervention_draws)]
    curves = {"uncertain": diagnose(_corrected(z, columns, target, uncertain))[None],
              "random": torch.stack([diagnose(_corrected(z, columns, target, rank)) for rank in random])}
    centre = (torch.tensor(rule.mean, dtype=z.dtype) if rule.mean is not None else (present + absent) / 2)
    midpoint = centre.expand(1, n, -1)
    shuffles = torch.stack([z[torch.randperm(n, generator=generator)] for _ in range(config.intervention_draws)])
    return _Fold(stems, torch.cat(truth), diagnose(z[None])[0], curves,
                 {"constant": diagnose(midpoint), "shuffled": diagnose(shuffles)})


class _Scorer:
    """Macro F1 and accuracy of predictions on one model's pooled test images, on shared resamples of their
    patients (``(n_boot + 1, n)`` weights: paired across everything scored)."""

    def __init__(self, truth: Tensor, clusters: Sequence[str], config: BenchmarkConfig) -> None:
        self.truth = truth
        self.n = len(truth)
        self.counts = counts_with_sample(self.n, clusters=clusters, n_boot=config.n_boot, seed=config.seed)
        self.y = one_hot(truth, len(vocab.DIAGNOSES)).double().numpy()

    def values(self, predicted: Tensor) -> dict[str, Tensor]:
        """``{"macro_f1", "accuracy"}`` ``(draws, n_boot + 1)`` of each draw of ``predicted`` ``(draws, n)`` on
        every resample."""
        f1 = macro_f1_of(self.y, one_hot(predicted, len(vocab.DIAGNOSES)).double().numpy())(self.counts)
        accuracy = torch.stack([weighted_mean((p == self.truth).double().numpy())(self.counts) for p in predicted])
        return {"macro_f1": f1, "accuracy": accuracy}

    def estimate(self, values: Tensor) -> Estimate:
        """The estimate of the mean over the draws of ``values`` ``(draws, n_boot + 1)``."""
        return from_resamples(values.mean(dim=0), unit="patient", n=self.n)

    def difference(self, a: Tensor, b: Tensor) -> Estimate:
        """The paired estimate of ``mean(a) − mean(b)`` over their draws, as the mean of every draw's difference
        (exactly 0 where every draw of both gives the same value)."""
        return from_resamples((a[:, None] - b[None]).mean(dim=(0, 1)), unit="patient", n=self.n)


def _draw_sd(f1: Tensor) -> float:
    """The SD (ddof 1) over the draws of macro F1 on the test images (row 0 of each draw's resamples)."""
    return float(f1[:, 0].std(correction=1)) if len(f1) > 1 else 0.0


def _benchmark_differ(folds: Sequence[tuple[Candidate, _Fold]], images: pd.DataFrame) -> int:
    """Test images whose uncorrected prediction differs from the benchmark's images table (same model, fold)."""
    differ = 0
    for candidate, fold in folds:
        mine = images[images["model"] == candidate.name]
        rows = mine.iloc[fold_rows(mine, candidate.fold)]
        predicted = dict(zip(rows["stem"], rows["predicted"], strict=True))
        differ += sum(predicted.get(s) != vocab.DIAGNOSES[int(p)] for s, p in zip(fold.stems, fold.plain, strict=True))
    return differ


def _model_block(folds: Sequence[tuple[Candidate, _Fold]], patients: Mapping[str, str], images: pd.DataFrame,
                 config: BenchmarkConfig) -> dict[str, Any]:
    """One model's ``summary["interventions"]["models"]`` entry from its folds (module docstring)."""
    first = folds[0][0]
    stems = [s for _, fold in folds for s in fold.stems]
    scorer = _Scorer(torch.cat([fold.truth for _, fold in folds]), [patients.get(s, s) for s in stems], config)
    plain = scorer.values(torch.cat([fold.plain for _, fold in folds])[None])
    curves: dict[str, list[dict[str, Any]]] = {}
    raw: dict[str, list[dict[str, Tensor]]] = {}
    for order in ORDERS:
        stacked = torch.cat([fold.curves[order] for _, fold in folds], dim=2)  # (draws, K + 1, n)
        raw[order] = [scorer.values(stacked[:, k]) for k in range(stacked.shape[1])]
        curves[order] = [{"k": k, "macro_f1": scorer.estimate(v["macro_f1"]),
                          "accuracy": scorer.estimate(v["accuracy"]),
                          **({"draw_sd": _draw_sd(v["macro_f1"])} if order == "random" else {})}
                         for k, v in enumerate(raw[order])]
    k_max = len(raw["uncertain"]) - 1
    shown = min(SHOWN_K, k_max)
    reliance: dict[str, Any] = {"plain": {"macro_f1": scorer.estimate(plain["macro_f1"]),
                                          "accuracy": scorer.estimate(plain["accuracy"])}}
    for name in REPLACEMENTS:
        v = scorer.values(torch.cat([fold.replaced[name] for _, fold in folds], dim=1))
        reliance[name] = {"macro_f1": scorer.estimate(v["macro_f1"]), "accuracy": scorer.estimate(v["accuracy"]),
                          "drop": scorer.difference(plain["macro_f1"], v["macro_f1"]),
                          **({"draw_sd": _draw_sd(v["macro_f1"])} if name == "shuffled" else {})}
    corrected = [c for c, d in zip(first.names.characteristics, first.names.dermxdb_characteristics, strict=True)
                 if d in vocab.CHARACTERISTICS]
    end, start = raw["uncertain"][k_max], raw["uncertain"][0]
    return {
        "folds": [c.fold for c, _ in folds], "images": len(stems), "patients": len({patients.get(s, s) for s in stems}),
        "characteristics": corrected,
        "not_correctable": [c for c in first.names.characteristics if c not in corrected],
        "k_max": k_max, "benchmark_differ": _benchmark_differ(folds, images), "curves": curves,
        "gain": {"macro_f1": scorer.difference(end["macro_f1"], start["macro_f1"]),
                 "accuracy": scorer.difference(end["accuracy"], start["accuracy"])},
        "lift": {"k": shown, **{order: scorer.difference(raw[order][shown]["macro_f1"], start["macro_f1"])
                                for order in ORDERS},
                 "uncertain_minus_random": scorer.difference(raw["uncertain"][shown]["macro_f1"],
                                                             raw["random"][shown]["macro_f1"])},
        "reliance": reliance,
    }


def intervention_study(db: DermXDB, candidates: Sequence[Candidate], config: BenchmarkConfig, *,
                       patients: Mapping[str, str], images: pd.DataFrame,
                       progress: Progress | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
    """``summary["interventions"]`` and the curve table (:func:`curve_table`) of every model of
    ``candidates`` (module docstring); ``patients``: each stem's patient (the unit of resampling);
    ``images``: the benchmark's images table (its predictions are what ``F1(0)`` must reproduce)."""
    wrap = progress or (lambda it, _d, _n: it)
    by_model: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        by_model.setdefault(candidate.name, []).append(candidate)
    summary: dict[str, Any] = {
        "draws": config.intervention_draws, "orders": list(ORDERS), "replacements": list(REPLACEMENTS),
        "shown_k": SHOWN_K, "labels": "majority", "raters": list(config.raters) if config.raters else "all",
        "correction": "training-logit percentiles: present q95, absent q5 (the model's intervention rule)",
        "constant": "each characteristic logit's training mean (the rule's mean); for a rule written before the "
                    "mean was kept, the midpoint (q5 + q95) / 2 of its percentiles",
        "models": {}, "skipped": {}}
    for name, folds in by_model.items():
        reasons = [(c.fold, why) for c in folds if (why := _why_not(c)) is not None]
        if len({c.names.characteristics for c in folds}) > 1:
            reasons.append((None, "its folds have different characteristics"))
        if reasons:
            summary["skipped"][name] = "; ".join(why if fold is None else f"fold {fold}: {why}"
                                                 for fold, why in reasons)
            continue
        generator = torch.Generator().manual_seed(config.seed)
        done = [(c, _fold(db, c, config, generator, wrap)) for c in folds]
        empty = [c.fold for c, fold in done if not fold.stems]
        if len(empty) == len(done):
            summary["skipped"][name] = "no test image with a DermXDB diagnosis"
            continue
        summary["models"][name] = _model_block([(c, f) for c, f in done if f.stems], patients, images, config)
    return summary, curve_table(summary)


def curve_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    """One row per (model, order, k) of ``summary["interventions"]``: images, patients, draws, macro F1 and
    accuracy with their 95 % CIs (``_low``, ``_high``) and, for the random order, the SD of macro F1 over the
    draws."""
    rows = []
    for model, block in summary["models"].items():
        for order, points in block["curves"].items():
            for point in points:
                f1, accuracy = point["macro_f1"], point["accuracy"]
                rows.append({"model": model, "order": order, "k": point["k"], "k_max": block["k_max"],
                             "images": block["images"], "patients": block["patients"],
                             "draws": summary["draws"] if order == "random" else 1,
                             "macro_f1": f1["mean"], "macro_f1_low": f1["low"], "macro_f1_high": f1["high"],
                             "accuracy": accuracy["mean"], "accuracy_low": accuracy["low"],
                             "accuracy_high": accuracy["high"], "macro_f1_draw_sd": point.get("draw_sd", math.nan)})
    columns = ["model", "order", "k", "k_max", "images", "patients", "draws", "macro_f1", "macro_f1_low",
               "macro_f1_high", "accuracy", "accuracy_low", "accuracy_high", "macro_f1_draw_sd"]
    return pd.DataFrame(rows, columns=columns).astype({"k": int}) if rows else pd.DataFrame(columns=columns)
