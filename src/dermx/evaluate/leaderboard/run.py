r"""The method × model leaderboard: which explanation agrees with the experts while staying faithful?

One row per (model, method), every column with its 95 % bootstrap CI over patients (``<col>_low``,
``<col>_high``; the folds of a model pooled per image first) and a direction
(:data:`~dermx.evaluate.leaderboard.config.DIRECTIONS`: higher or lower is better):

* **agreement**, the benchmark's protocol (the numbers :func:`~dermx.evaluate.benchmark.run.run_benchmark`
  gives with the method): ``dice``, ``sensitivity``, ``specificity``, ``pointing`` on every test image
  (Score-CAM: on the first ``score_images``, see
  :class:`~dermx.evaluate.leaderboard.config.LeaderboardConfig`;
  :mod:`~dermx.evaluate.leaderboard.agreement`) that the protocol selects; ``agreement_images`` counts
  the images scored. Protocol ``dermx`` (default): characteristic maps against the ``mean``-fused
  characteristic references, pairs whose characteristic is present. Protocol ``followup`` (Jalaboi et
  al. 2023, arXiv 2302.12084, as dermx implements it: the differences from the published run are
  listed with its rows): the predicted class's map, correctly diagnosed images only, against the
  per-image union map with the ``relative`` fusion; mean over images per model (per fold), then mean
  over folds, and from two folds on their SD (``<col>_fold_sd``; one fold has no spread).
* **faithfulness** (:mod:`~dermx.evaluate.leaderboard.faithfulness`) of the predicted diagnosis's map, on
  the first ``n_images`` test images (sorted stems): ``deletion_auc`` / ``insertion_auc`` (blur baseline),
  ``deletion_auc_mean`` / ``insertion_auc_mean`` (mean-colour baseline), ``road_morf`` / ``road_lerf``
  (mean target probability over the ROAD percentages), ``faithfulness_corr``. Scores are the model's
  probabilities (softmax over diagnoses, sigmoid per characteristic), except for the faithfulness
  correlation, which correlates logit drops as Quantus does by default: a saturated softmax gives the
  same drop for every random subset (a confident model pushed to another class by scattered baseline
  pixels) and leaves the correlation undefined.
* **sanity** (:mod:`~dermx.evaluate.leaderboard.sanity`), over every target's map on the same images:
  ``mprt_spearman`` / ``mprt_ssim`` (similarity to the trained model's maps after the whole cascade
  of randomisation; the per-step curve is in ``leaderboard.json``), ``random_logit`` (SSIM of the
  predicted diagnosis's map with another diagnosis's map).
* **robustness** (:mod:`~dermx.evaluate.leaderboard.robustness`): ``max_sensitivity``,
  ``avg_sensitivity`` over every target's map.

Per image, a metric over several targets is first averaged over the defined targets (as the benchmark
does over pairs), then patients are bootstrapped (:func:`dermx.evaluate.stats.estimate`; faithfulness
correlation also resamples its random subsets, :func:`dermx.evaluate.stats.correlation_estimate`).

**Per group** (``groups``: the images' groups of the benchmark's trust figures, DermXDB's skin tone by
default or the attribute of a ``--groups`` file, :mod:`dermx.evaluate.image_groups`): each row's
``deletion_auc`` per group of its images, with its CI over the group's patients and its gap to the rest
of the row's images at the Bonferroni level over those groups, exactly as the benchmark's per-group
scores (:func:`dermx.evaluate.benchmark.groups.score_groups`): ``Leaderboard.groups["models"][model]
[method]`` (the row's method; ``same_maps`` the methods sharing it).

Forward passes are shared wherever the maths allows: one forward pass (and one gradient computation)
per batch gives every method's maps (:meth:`~dermx.explain.CamEngine.explain_methods`: the gradient
methods and Eigen-CAM all follow from the same activations and gradients, Score-CAM's masked forwards
give every target at once), for the agreement, the trained maps, each MPRT step and each sensitivity
draw; the deletion, insertion and ROAD images of all methods go through one call, so identical maps
(CAM and Grad-CAM are equal after min-max normalisation; Eigen-CAM gives every target the same map)
and map-independent steps (q = 0 and 1) are scored once; faithfulness correlation's random subsets
are shared by every method, so its forward passes are paid once per model.

A (model, method) cell that cannot be computed (an unknown method, a method the model's layer does not
support, an unreadable checkpoint) is reported with its reason in ``excluded`` and the other cells are
still computed. A metric undefined on every image of a row (a constant map has no rank correlation,
an empty selection no Dice;
:data:`~dermx.evaluate.leaderboard.config.UNDEFINED_WHY`) keeps its row: the value is ``null`` in
``leaderboard.json`` with the metric and its reason in ``undefined``, and the report shows the reason in
that cell. ``leaderboard.csv`` holds only rows whose every value is a finite number.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from dermx.compute import Compute
from dermx.compute.shards import Shards
from dermx.data import DermXDB
from dermx.evaluate.benchmark.groups import score_groups
from dermx.evaluate.benchmark.run import identities
from dermx.evaluate.candidates import Candidate
from dermx.evaluate.image_groups import ImageGroups, skin_tones
from dermx.evaluate.leaderboard.agreement import agreement_rows
from dermx.evaluate.leaderboard.config import (
    AGREEMENT,
    DIRECTIONS,
    FOLLOWUP_DIFFERENCES,
    UNDEFINED_WHY,
    Leaderboard,
    LeaderboardConfig,
    deviations,
    parse_methods,
)
from dermx.evaluate.leaderboard.model_metrics import ModelMetrics, model_metrics
from dermx.evaluate.leaderboard.trust import (
    CRITERIA,
    FEW,
    SAME,
    near_pairs,
    rank,
    same_groups,
    sentence,
    verdict,
)
from dermx.evaluate.stats import Clusters, correlation_estimate, estimate
from dermx.explain.methods import get_method
from dermx.runs.leaderboard import undefined_value
from dermx.runs.leaderboard import write_leaderboard as write_files

__all__ = ["run_leaderboard", "write_leaderboard"]

Progress = Callable[[Iterable[Any], str, int], Iterable[Any]]


def _by_model(candidates: Sequence[Candidate]) -> dict[str, list[Candidate]]:
    out: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        out.setdefault(candidate.name, []).append(candidate)
    return out


def _image_values(part: ModelMetrics, method: str, metric: str) -> pd.DataFrame:
    """One fold's values of a metric per image (``stem``, ``value``): a metric over several targets is
    averaged over the targets where it is defined (NaN when none is)."""
    v = part.values[method][metric].double()
    if v.ndim == 2:
        defined = ~torch.isnan(v)
        v = torch.where(defined, v, 0).sum(dim=1) / defined.sum(dim=1)
    return pd.DataFrame({"stem": part.stems, "value": v.numpy()})


def _pooled_values(folds: Sequence[ModelMetrics], candidates: Sequence[Candidate], method: str,
                   metric: str) -> pd.DataFrame:
    """Every fold's values of a metric per image (``stem``, ``fold``, ``value``)."""
    return pd.concat([_image_values(part, method, metric).assign(fold=candidate.fold)
                      for part, candidate in zip(folds, candidates, strict=True)], ignore_index=True)


def _pooled(folds: Sequence[ModelMetrics], candidates: Sequence[Candidate], method: str, metric: str,
            config: LeaderboardConfig, clusters: Clusters) -> dict[str, float]:
    """One metric of one method, its per-image values of every fold pooled (per image, a metric over
    several targets is first averaged over the defined targets), then estimated with its CI over
    patients; faithfulness correlation resamples its random subsets too
    (:func:`~dermx.evaluate.stats.correlation_estimate`)."""
    if metric == "faithfulness_corr":
        stems = [s for part in folds for s in part.stems]
        sums = torch.cat([part.fc_runs[method][0] for part in folds]).numpy()
        drops = torch.cat([part.fc_runs[method][1] for part in folds]).numpy()
        e = correlation_estimate(sums, drops, stems, clusters=clusters, n_boot=config.n_boot, seed=config.seed)
        return {metric: e["mean"], f"{metric}_low": e["low"], f"{metric}_high": e["high"]}
    e = estimate(_pooled_values(folds, candidates, method, metric), "value", clusters=clusters,
                 n_boot=config.n_boot, seed=config.seed)
    return {metric: e["mean"], f"{metric}_low": e["low"], f"{metric}_high": e["high"]}


def _agreement_columns(rows: pd.DataFrame, config: LeaderboardConfig, clusters: Clusters = None) -> dict[str, float]:
    """The agreement columns of one (model, method): mean of image means (the follow-up protocol: the mean
    over folds of per-fold means) with the CI over patients of the pooled folds, and, with two folds or
    more, the SD over folds (``_fold_sd``; one fold has no spread, so no such column)."""
    columns: dict[str, float] = {"agreement_images": len(rows[["fold", "stem"]].drop_duplicates())}
    for score in AGREEMENT:
        e = estimate(rows, score, clusters=clusters, n_boot=config.n_boot, seed=config.seed)
        columns.update({score: e["fold_mean"] if config.protocol == "followup" else e["mean"],
                        f"{score}_low": e["low"], f"{score}_high": e["high"]})
        if e["folds"] >= 2:
            columns[f"{score}_fold_sd"] = e["fold_sd"]
    return columns


def _settings(config: LeaderboardConfig) -> str:
    return (f"settings: agreement on every test image (Score-CAM: the first {config.score_images or 'all'}); "
            f"faithfulness, sanity and robustness on the first {config.n_images}; deletion/insertion "
            f"{config.steps} steps; ROAD at {list(config.road_percentages)} %; MPRT maps at {config.mprt_steps} "
            f"cascade positions; {config.sensitivity_samples} sensitivity draws; {config.fc_runs} "
            f"faithfulness-correlation subsets; {config.n_boot} bootstrap resamples")


def _deletion_groups(folds: Sequence[ModelMetrics], candidates: Sequence[Candidate], method: str,
                     groups: ImageGroups, config: LeaderboardConfig, clusters: Clusters) -> dict[str, Any]:
    """A row's deletion AUC per group of its images, each with its gap to the rest (module docstring)."""
    rows = _pooled_values(folds, candidates, method, "deletion_auc").rename(columns={"value": "deletion_auc"})
    return score_groups(rows, "deletion_auc", groups, clusters=clusters, n_boot=config.n_boot, seed=config.seed)


@dataclass
class FoldScores:
    """What one model fold contributes to the leaderboard (one unit of a sharded run): its metrics per
    image (:func:`~dermx.evaluate.leaderboard.model_metrics.model_metrics`), its agreement rows per
    method, or why it failed (``error``), with the lines it said."""

    metrics: ModelMetrics | None = None
    agreement: dict[str, pd.DataFrame] = field(default_factory=dict)
    agreement_error: str | None = None
    error: str | None = None
    said: list[str] = field(default_factory=list)


def score_fold(db: DermXDB, candidate: Candidate, config: LeaderboardConfig, wrap: Progress) -> FoldScores:
    """Every metric and the agreement rows of one model fold (a failure is recorded, never raised)."""
    out = FoldScores()
    if candidate.model is not None:  # ~30 % faster CPU convolutions; outputs equal to ~1e-5
        candidate.model.to(memory_format=torch.channels_last)
    try:
        out.metrics = model_metrics(db, candidate, list(config.methods), config, out.said.append)
    except Exception as error:  # one model's failure must not lose the other cells
        out.error = f"{error}\n{traceback.format_exc(limit=3)}"
        return out
    ok = [m for m in config.methods if m in out.metrics.values]
    try:
        out.agreement = agreement_rows(db, [candidate], ok, config, wrap) if ok else {}
    except (ValueError, RuntimeError, KeyError) as error:
        out.agreement_error = str(error)
    return out


def _model_rows(db: DermXDB, name: str, candidates: list[Candidate], scored: list[FoldScores], board: Leaderboard,
                say: Callable[[str], None], clusters: Clusters, image_groups: ImageGroups) -> None:
    """Every row of one model (all its folds, ``scored`` by :func:`score_fold`) into ``board``; a failure is
    recorded, never raised."""
    config = board.config
    methods = list(config.methods)
    for score in scored:
        for line in score.said:
            say(line)
    failed = next((score.error for score in scored if score.error is not None), None)
    if failed is not None:
        say(f"{name}: faithfulness/sanity failed: {failed}")
        board.excluded += [{"model": name, "method": m, "reason": f"failed: {failed.splitlines()[0]}"}
                           for m in methods]
        return
    folds = [score.metrics for score in scored if score.metrics is not None]
    for method in methods:
        reasons = {part.failed[method] for part in folds if method in part.failed}
        board.excluded += [{"model": name, "method": method, "reason": reason} for reason in reasons]
    ok = [m for m in methods if all(m in part.values for part in folds)]
    n_test = sum(len(c.stems) for c in candidates)
    limit = config.score_images
    for method in ok:
        if get_method(method).uses_scores and limit is not None and any(limit < len(c.stems) for c in candidates):
            board.notes.append(f"{name} / {method}: agreement on the first {limit} test images "
                               f"(sorted stems) per fold, not all {n_test}: it needs one forward pass per "
                               "channel of the CAM layer per image (--n-scorecam-images N|all)")
            say(board.notes[-1])
    error = next((score.agreement_error for score in scored if score.agreement_error is not None), None)
    if error is not None:
        board.excluded += [{"model": name, "method": m, "reason": f"agreement failed: {error}"} for m in ok]
        say(f"{name}: agreement failed ({error})")
        agreement: dict[str, pd.DataFrame] = {}
    else:
        agreement = {m: pd.concat([score.agreement[m] for score in scored], ignore_index=True) for m in ok}
    for fold in folds:
        if fold.example:
            board.examples.setdefault(f"image:{name}", fold.example["image"])
            board.examples.update({f"map:{name}:{m}": fold.example[f"map:{m}"] for m in ok})
        board.mprt_curves.setdefault(name, {}).update(fold.curves)
    differences = [fold.map_differences for fold in folds]
    groups = same_groups([m for m in ok if m in agreement], differences)
    for group in groups:
        head = group[0]
        row: dict[str, Any] = {"model": name, "method": head, "same_maps": ", ".join(group[1:]),
                               **_agreement_columns(agreement[head], config, clusters)}
        for metric in folds[0].values[head]:
            row.update(_pooled(folds, candidates, head, metric, config, clusters))
        row["n_images"] = sum(min(config.n_images, len(c.stems)) for c in candidates)
        board.rows.append(row)
        board.groups["models"].setdefault(name, {})[head] = {
            "same_maps": group[1:], **_deletion_groups(folds, candidates, head, image_groups, config, clusters)}
        if len(group) > 1:
            board.notes.append(f"{name}: {' = '.join(group)} give the same maps on this model (largest difference "
                               f"≤ {SAME:g}: their CAM layer feeds global average pooling and one linear head), so "
                               "they share one row")
        for metric, reason in _undefined(row):
            board.undefined.append({"model": name, "method": head, "metric": metric, "reason": reason})
            say(f"{name} / {head}: {metric} undefined ({reason}); the row is kept, and left out of "
                "leaderboard.csv")
        few = [c for c in ("agreement_images", "n_images") if row[c] < FEW]
        if few:
            board.notes.append(f"{name} / {head}: a CI rests on few images ({', '.join(f'{c} {row[c]}' for c in few)}"
                               f" < {FEW})")
    board.notes += [f"{name}: {a} and {b} give nearly the same maps (largest difference {d:.3g})"
                    for a, b, d in near_pairs(groups, differences)]
    heads = [g[0] for g in groups]
    if heads:
        ranks = {criterion: rank(_per_image(criterion, heads, agreement, folds), direction, clusters, config.n_boot,
                                 config.seed) for criterion, (_, direction, _) in CRITERIA.items()}
        result = verdict(ranks)
        names = {g[0]: " = ".join(g) for g in groups}
        board.trust[name] = {**result, "sentence": sentence(name, result, names)}
        say(board.trust[name]["sentence"])


def _per_image(criterion: str, methods: Sequence[str], agreement: dict[str, pd.DataFrame],
               folds: Sequence[ModelMetrics]) -> dict[str, pd.DataFrame]:
    """Per-image values (``stem``, ``value``) of each method on a criterion of
    :data:`~dermx.evaluate.leaderboard.trust.CRITERIA` (a metric over several targets: their mean)."""
    column = CRITERIA[criterion][0]
    if criterion == "agreement":
        return {m: agreement[m].groupby("stem", as_index=False)[column].mean().rename(columns={column: "value"})
                for m in methods}
    return {m: pd.concat([_image_values(part, m, column) for part in folds], ignore_index=True) for m in methods}


def run_leaderboard(db: DermXDB, candidates: Sequence[Candidate], methods: Sequence[str] | str = "all",
                    config: LeaderboardConfig | None = None, *, progress: Progress | None = None,
                    say: Callable[[str], None] | None = None, groups: ImageGroups | None = None,
                    compute: Compute | None = None, shards: Shards | None = None) -> Leaderboard:
    """Score every (model, method) cell (module docstring) of the loaded ``candidates`` (several folds of
    a model share its name). Problems of one cell are recorded in ``excluded`` and reported through
    ``say``; an unknown method name is a :class:`ValueError` before any work. ``groups``: the images'
    groups of the deletion AUC per group (default: DermXDB's skin tones). ``shards``: the processes sharing
    the work (:class:`~dermx.compute.shards.Shards`; default: this one): each model fold is a unit, scored
    whole by one process (its random draws run over its images, so it is not split); only the main
    process builds the rows (the others return an empty board). ``compute``: where the models
    explain and score (default: ``shards``'s, the accelerator if any, float32;
    :meth:`Candidate.on <dermx.evaluate.candidates.Candidate.on>`)."""
    shards = shards or Shards()
    compute = compute or shards.compute
    candidates = [candidate.on(compute) for candidate in candidates]
    say = say or (lambda _m: None)
    wrap = progress or (lambda it, _d, _n: it)
    config = LeaderboardConfig(**{**(config or LeaderboardConfig()).to_dict(), "methods": parse_methods(methods)})
    board = Leaderboard(config=config)
    groups = groups or skin_tones(db)
    board.groups = {"by": groups.by, "score": "deletion_auc",
                    "images": f"the first {config.n_images} test images of each fold", "models": {}}
    say(_settings(config))
    models = _by_model(candidates)
    stems = {s for c in candidates for s in c.stems}
    clusters = pd.Series({s: db.images[s].patient for s in stems}, dtype=str)
    shards = shards or Shards()
    ordered = [c for folds in models.values() for c in folds]
    scored = shards.map("leaderboard", ordered, lambda c: score_fold(db, c, config, wrap),
                        key=(config.to_dict(), identities(ordered), [c.stems for c in ordered], compute.precision),
                        costs=[_cost(c) for c in ordered],
                        progress=progress, description="leaderboard, model folds")
    if not shards.is_main:  # the other processes only scored their share
        return board
    start = 0
    for name, folds in models.items():
        _model_rows(db, name, folds, scored[start:start + len(folds)], board, say, clusters, groups)
        start += len(folds)
    if config.protocol == "followup":
        board.notes.append(FOLLOWUP_DIFFERENCES)
    if config.protocol == "followup":
        board.notes += _across_models(board.rows)
    tested = {name: {s for c in folds for s in c.stems} for name, folds in models.items()}
    names = list(tested)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if tested[a] != tested[b]:
                board.notes.append(f"{a} and {b} were tested on different images ({len(tested[a])} and "
                                   f"{len(tested[b])}, {len(tested[a] & tested[b])} shared): their rows are not "
                                   "paired comparisons")
                say(board.notes[-1])
    return board


def _cost(candidate: Candidate) -> float:
    """A fold's relative cost, for sharing folds among processes: its network's parameters (a proxy for
    its passes' cost) times its test images."""
    size = sum(p.numel() for p in candidate.model.parameters()) if candidate.model is not None else 1
    return float(size * len(candidate.stems))


def _undefined(row: dict[str, Any]) -> list[tuple[str, str]]:
    """(column, reason) of each non-finite value of a row: a metric undefined on every image
    (:data:`UNDEFINED_WHY`), or only its interval or spread (its ``_low``, ``_high``, ``_fold_sd``)."""
    bad = [k for k, v in row.items() if undefined_value(v)]
    out = []
    for column in bad:
        metric = next((column.removesuffix(s) for s in ("_low", "_high", "_fold_sd") if column.endswith(s)), column)
        if metric == column:
            out.append((column, "undefined on every image: " + UNDEFINED_WHY.get(column, "no defined value")))
        elif metric not in bad:
            out.append((column, f"{metric} is defined but its interval or spread is not (too few images or folds)"))
    return out


def _across_models(rows: list[dict[str, Any]]) -> list[str]:
    """The follow-up paper's last step: per method, mean ± SD (ddof = 1) of the models' agreement."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        values = [r["dice"] for r in rows if r["method"] == method and r["dice"] is not None
                  and math.isfinite(r["dice"])]
        if len(values) > 1:
            out.append(f"{method}: Dice over {len(values)} models {np.mean(values):.3f} ± "
                       f"{np.std(values, ddof=1):.3f} (mean ± SD)")
    return out


def write_leaderboard(board: Leaderboard, out: str | Path) -> list[Path]:
    """``leaderboard.csv`` (finite rows), ``leaderboard.json`` (everything) and ``leaderboard_examples.npz``
    (:mod:`dermx.runs.leaderboard`)."""
    return write_files(out, {"config": board.config.to_dict(), "directions": DIRECTIONS,
                             "deviations": deviations(board.config),
                             "protocol": board.config.protocol, "rows": board.rows, "excluded": board.excluded,
                             "undefined": board.undefined, "notes": board.notes, "mprt_curves": board.mprt_curves,
                             "trust": board.trust, "groups": board.groups},
                       board.examples)
