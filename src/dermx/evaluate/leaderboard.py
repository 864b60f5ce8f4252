r"""The method × model leaderboard: which explanation agrees with the experts while staying faithful?

One row per (model, method), every column with its 95 % bootstrap CI over images (``<col>_low``,
``<col>_high``) and a direction (:data:`DIRECTIONS`: higher or lower is better):

* **agreement**, the benchmark's protocol (the numbers :func:`~dermx.evaluate.benchmark.run_benchmark`
  gives with the method): ``dice``, ``sensitivity``, ``specificity``, ``pointing`` on every test image
  (Score-CAM: on the first ``score_images``, see :class:`LeaderboardConfig`) that the protocol selects;
  ``agreement_images`` counts the images scored.
  Protocol ``dermx`` (default): characteristic maps against the ``mean``-fused characteristic
  references, pairs whose characteristic is present. Protocol ``followup`` (Jalaboi et al. 2023, arXiv 2302.12084): the
  predicted class's map, correctly diagnosed images only, against the per-image union map with the
  ``relative`` fusion; mean over images per model (per fold), then mean ± SD over folds
  (``<col>_fold_sd``; 0 folds of spread for a single checkpoint is reported as SD 0).
* **faithfulness** (:mod:`dermx.evaluate.faithfulness`) of the predicted diagnosis's map, on the first
  ``n_images`` test images (sorted stems): ``deletion_auc`` / ``insertion_auc`` (blur baseline),
  ``deletion_auc_mean`` / ``insertion_auc_mean`` (mean-colour baseline), ``road_morf`` / ``road_lerf``
  (mean target probability over the ROAD percentages), ``faithfulness_corr``. Scores are the model's
  probabilities (softmax over diagnoses, sigmoid per characteristic), except for the faithfulness
  correlation, which correlates logit drops as Quantus does by default: a saturated softmax gives the
  same drop for every random subset (a confident model pushed to another class by scattered baseline
  pixels) and leaves the correlation undefined.
* **sanity** (:mod:`dermx.evaluate.sanity`), over every target's map on the same images:
  ``mprt_spearman`` / ``mprt_ssim`` (similarity to the trained model's maps after the whole cascade
  of randomisation; the per-step curve is in ``leaderboard.json``), ``random_logit`` (SSIM of the
  predicted diagnosis's map with another diagnosis's map).
* **robustness** (:mod:`dermx.evaluate.robustness`): ``max_sensitivity``, ``avg_sensitivity`` over
  every target's map.

Per image, a metric over several targets is first averaged over the defined targets (as the benchmark
does over pairs), then images are bootstrapped (:func:`dermx.evaluate.stats.estimate`).

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
an empty selection no Dice; :data:`UNDEFINED_WHY`) keeps its row: the value is ``null`` in
``leaderboard.json`` with the metric and its reason in ``undefined``, and the report shows the reason in
that cell. ``leaderboard.csv`` holds only rows whose every value is a finite number.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from dermx import vocab
from dermx.data import DermXDB, ReferenceMaps
from dermx.evaluate.bench_summary import select
from dermx.evaluate.bench_types import BenchmarkConfig
from dermx.evaluate.candidates import Candidate, load_candidates
from dermx.evaluate.faithfulness import deletion_curves, faithfulness_correlation, road_curves
from dermx.evaluate.robustness import sensitivity
from dermx.evaluate.sanity import (
    average_ranks,
    cascading_randomisation,
    random_logit,
    randomisation_layers,
    spearman,
    ssim,
)
from dermx.evaluate.scoring import score_batch
from dermx.evaluate.stats import estimate
from dermx.explain import CamEngine
from dermx.explain.methods import METHODS, get_method
from dermx.jsonio import write_json
from dermx.models import DermXNet
from dermx.train.datasets import ImageDataset, dermxdb_items
from dermx.vocab_map import Aliases

__all__ = ["AGREEMENT", "DIRECTIONS", "PROTOCOLS", "UNDEFINED_WHY", "LeaderboardConfig", "parse_methods",
           "run_leaderboard", "write_leaderboard"]

Protocol = Literal["dermx", "followup"]

#: Benchmark settings and map kind of each agreement protocol: (fusion, selection, kind).
PROTOCOLS: dict[str, tuple[str, str, str]] = {
    "dermx": ("mean", "present", "characteristic"),
    "followup": ("relative", "correct", "diagnosis-union"),
}

AGREEMENT: tuple[str, ...] = ("dice", "sensitivity", "specificity", "pointing")

#: Every leaderboard metric and whether higher or lower is better.
DIRECTIONS: dict[str, str] = {
    "dice": "higher", "sensitivity": "higher", "specificity": "higher", "pointing": "higher",
    "deletion_auc": "lower", "insertion_auc": "higher", "deletion_auc_mean": "lower",
    "insertion_auc_mean": "higher", "road_morf": "lower", "road_lerf": "higher", "faithfulness_corr": "higher",
    "mprt_spearman": "lower", "mprt_ssim": "lower", "random_logit": "lower",
    "max_sensitivity": "lower", "avg_sensitivity": "lower",
}

_NO_PAIRS = ("no (image, map) pair to score: the protocol selects none (dermx: the model has no characteristic "
             "outputs, as a dx-only model; followup: no test image diagnosed correctly) or every reference map "
             "is empty")
_FLAT_DROP = "the map or the score's drops are the same for every random subset (Pearson's r needs both to vary)"

#: Why each metric can be undefined (NaN) on an image, the reason given when it is on every image.
UNDEFINED_WHY: dict[str, str] = {
    **dict.fromkeys(AGREEMENT, _NO_PAIRS),
    **dict.fromkeys(("deletion_auc", "insertion_auc", "deletion_auc_mean", "insertion_auc_mean", "road_morf",
                     "road_lerf"), "no test image to perturb"),
    "faithfulness_corr": _FLAT_DROP,
    "mprt_spearman": "a trained or randomised map is constant (rank correlation needs ranks), e.g. all zero "
                     "after the ReLU",
    "mprt_ssim": "both maps are constant (zero data range)",
    "random_logit": "both maps are constant (zero data range)",
    **dict.fromkeys(("max_sensitivity", "avg_sensitivity"),
                    "every map is zero (sensitivity is relative to the map's norm)"),
}


@dataclass(frozen=True)
class LeaderboardConfig:
    """Choices of a leaderboard run (stored in ``leaderboard.json``).

    ``n_images``: test images (first by sorted stem) for faithfulness, sanity and robustness; the
    agreement uses every test image, except for methods that score masked images (Score-CAM: one
    forward pass per channel of the CAM layer per image, e.g. 256 on the demo's models), whose
    agreement uses the first ``score_images`` (``None``: every test image); each row's
    ``agreement_images`` says how many, and a note names the subset. ``steps``: deletion / insertion
    steps. ``mprt_steps``: cascade positions at which maps are recomputed (evenly spaced over the
    randomisable layers, always including the last, full randomisation). ``sensitivity_samples``
    noise draws of radius ``sensitivity_radius``; ``fc_runs`` subsets of ``fc_subset`` pixels for
    faithfulness correlation.
    """

    methods: tuple[str, ...] = tuple(METHODS)
    protocol: Protocol = "dermx"
    n_images: int = 16
    score_images: int | None = 64
    steps: int = 8
    blur_sigma: float = 5.0
    road_percentages: tuple[float, ...] = (20.0, 50.0, 80.0)
    road_noise: float = 0.01
    mprt_steps: int = 3
    sensitivity_samples: int = 3
    sensitivity_radius: float = 0.02
    fc_runs: int = 20
    fc_subset: int = 256
    threshold: float = 0.5
    n_boot: int = 1000
    seed: int = 0
    batch_size: int = 64

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Leaderboard:
    """Rows (model, method, metrics with CIs), excluded cells with reasons, metrics undefined on every
    image of a row (model, method, metric, reason), notes, MPRT curves and an example image under every
    (model, method)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, str]] = field(default_factory=list)
    undefined: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    mprt_curves: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    examples: dict[str, np.ndarray] = field(default_factory=dict)
    config: LeaderboardConfig = field(default_factory=LeaderboardConfig)

    def frame(self) -> pd.DataFrame:
        """The finite rows as a table (``leaderboard.csv``; with its header even when no row is finite)."""
        columns = list(dict.fromkeys(k for r in self.rows for k in r))
        return pd.DataFrame([r for r in self.rows if _finite(r)], columns=columns or None)


def parse_methods(text: str | Sequence[str]) -> tuple[list[str], list[str]]:
    """``"all"`` or ``"gradcam,gradcam++,..."`` → (engine method names, messages for unknown names);
    ``all`` in a list stands for every method."""
    names = text.split(",") if isinstance(text, str) else list(text)
    names = [n.strip() for n in names if n.strip()]
    methods: list[str] = list(METHODS) if "all" in names else []
    errors = []
    for name in (n for n in names if n != "all"):
        try:
            method = get_method(name).name
        except ValueError as error:
            errors.append(str(error))
            continue
        if method not in methods:
            methods.append(method)
    return methods, errors


def _undefined_value(value: Any) -> bool:
    """A row's number that is missing or not finite (strings, the row's names, are never undefined)."""
    return not isinstance(value, str) and (value is None or not math.isfinite(float(value)))


def _finite(row: dict[str, Any]) -> bool:
    return not any(_undefined_value(v) for v in row.values())


def _scores(model: DermXNet, *, logits: bool = False) -> Callable[[Tensor], Tensor]:
    """Images → every target's probability (or logit), in the engine's column order (characteristics,
    diagnoses)."""

    def score(images: Tensor) -> Tensor:
        out = model(images)
        if logits:
            return torch.cat([out[k] for k in ("characteristic", "diagnosis") if k in out], dim=1)
        p = model.probabilities(out)
        return torch.cat([p.characteristic, p.diagnosis], dim=1)

    return score


def _images(db: DermXDB, candidate: Candidate, stems: Sequence[str]) -> Tensor:
    items = dermxdb_items(db, stems, vocab.CHARACTERISTICS)
    dataset = ImageDataset(items, candidate.input_size, candidate.mean, candidate.std, policy=candidate.policy)
    return torch.cat([b["image"] for b in DataLoader(dataset, batch_size=64, shuffle=False)])


def _method_maps(model: DermXNet, methods: Sequence[str], images: Tensor, batch_size: int) -> dict[str, Tensor]:
    """Every target's map ``(B, T, H, W)`` under each method, all methods from one pass per batch."""
    engine = CamEngine(model, methods[0], model.config.cam_layer, size="input")
    parts: dict[str, list[Tensor]] = {m: [] for m in methods}
    for start in range(0, len(images), batch_size):
        for method, result in engine.explain_methods(images[start:start + batch_size], methods).items():
            parts[method].append(result.maps.detach())
    return {m: torch.cat(p) for m, p in parts.items()}


def _cascade_positions(n_layers: int, steps: int) -> list[int]:
    """Indices (0-based) of the cascade steps evaluated: evenly spaced, the last always included."""
    steps = max(1, min(steps, n_layers))
    return sorted({round((k + 1) * n_layers / steps) - 1 for k in range(steps)})


def _estimate(stems: Sequence[str], fold: int | None, values: Tensor, config: LeaderboardConfig) -> dict[str, float]:
    """Per-image values (B,) or (B, T) (NaN-aware mean over T) → mean and bootstrap CI over images."""
    v = values.double()
    if v.ndim == 2:
        defined = ~torch.isnan(v)
        v = torch.where(defined, v, 0).sum(dim=1) / defined.sum(dim=1)  # NaN when no target is defined
    rows = pd.DataFrame({"stem": list(stems), "fold": fold, "value": v.numpy()})
    e = estimate(rows, "value", n_boot=config.n_boot, seed=config.seed)
    return {"mean": e["mean"], "low": e["low"], "high": e["high"], "undefined": e["undefined"]}


def _agreement(db: DermXDB, candidates: Sequence[Candidate], methods: Sequence[str], config: LeaderboardConfig,
               wrap: Callable[[Iterable[Any], str, int], Iterable[Any]]) -> dict[str, dict[str, float]]:
    """Agreement columns of each method: the benchmark's scoring (:func:`~dermx.evaluate.scoring.score_batch`)
    and estimates (``summary["localization"][selection][model][kind]["overall"]`` of
    :func:`~dermx.evaluate.benchmark.run_benchmark`), every method's maps of a batch from one forward pass."""
    fusion, selection, kind = PROTOCOLS[config.protocol]
    references = ReferenceMaps.for_benchmark(db, fusion)
    tables: dict[str, list[pd.DataFrame]] = {m: [] for m in methods}
    masked = [m for m in methods if get_method(m).uses_scores]  # Score-CAM: on config.score_images only
    for candidate in candidates:
        subset = set(sorted(candidate.stems)[:config.score_images])
        items = dermxdb_items(db, candidate.stems, vocab.CHARACTERISTICS)
        dataset = ImageDataset(items, candidate.input_size, candidate.mean, candidate.std, policy=candidate.policy,
                               map_fn=references)
        loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=False)
        fold = f" (fold {candidate.fold})" if candidate.fold is not None else ""
        for batch in wrap(loader, f"agreement of {candidate.name}{fold}, {len(methods)} methods", len(loader)):
            stems = [items[i].key for i in batch["index"].tolist()]
            keep = torch.tensor([stem in subset for stem in stems])
            for chosen, part in (([m for m in methods if m not in masked], None), (masked, keep)):
                if not chosen or (part is not None and not part.any()):
                    continue
                sub = batch if part is None else {k: v[part] for k, v in batch.items()}
                with torch.no_grad():
                    explained = candidate.explain.explain_methods(sub, chosen)  # type: ignore[attr-defined]
                for method, explanation in explained.items():
                    scored = score_batch([items[i].key for i in sub["index"].tolist()], sub["diagnosis"],
                                         sub["characteristics"].bool(), sub["maps"], explanation,
                                         candidate.characteristics, threshold=config.threshold, baselines=(),
                                         seed=config.seed)
                    tables[method].append(scored.items.assign(fold=candidate.fold))
    out: dict[str, dict[str, float]] = {}
    for method in methods:
        rows = select(pd.concat(tables[method], ignore_index=True), selection)
        rows = rows[rows["kind"] == kind]
        columns: dict[str, float] = {"agreement_images": len(rows[["fold", "stem"]].drop_duplicates())}
        for score in AGREEMENT:
            e = estimate(rows, score, n_boot=config.n_boot, seed=config.seed)
            columns.update({score: e["fold_mean"] if config.protocol == "followup" else e["mean"],
                            f"{score}_low": e["low"], f"{score}_high": e["high"],
                            f"{score}_fold_sd": 0.0 if e.get("folds", 0) <= 1 else e["fold_sd"]})
        out[method] = columns
    return out


def _model_metrics(db: DermXDB, name: str, candidate: Candidate, methods: list[str], config: LeaderboardConfig,
                   board: Leaderboard, say: Callable[[str], None]) -> dict[str, dict[str, float]]:
    """Faithfulness, sanity and robustness of every method for one model (fold): {method: columns}."""
    model = candidate.explain.model  # type: ignore[attr-defined]
    model.eval()
    stems = sorted(candidate.stems)[: config.n_images]
    images = _images(db, candidate, stems)
    score = _scores(model)
    n_char = len(model.config.characteristics)
    with torch.no_grad():
        probabilities = score(images)
    predicted = n_char + probabilities[:, n_char:].argmax(dim=1)
    columns: dict[str, dict[str, float]] = {}
    ok = []
    for method in methods:  # one image per method finds the cells that cannot be computed
        try:
            _method_maps(model, [method], images[:1], 1)
            ok.append(method)
        except (ValueError, RuntimeError) as error:
            board.excluded.append({"model": name, "method": method, "reason": f"cannot explain: {error}"})
            say(f"{name} / {method}: cannot explain ({error}); other cells continue")
    if not ok:
        return columns
    maps = _method_maps(model, ok, images, config.batch_size)
    index = torch.arange(len(images))
    picked = torch.stack([maps[m][index, predicted] for m in ok], dim=1)  # (B, M, H, W)
    targets = predicted[:, None].expand(-1, len(ok))
    kw = {"batch_size": config.batch_size}
    per: dict[str, Tensor] = {}
    say(f"{name}: deletion and insertion ({config.steps} steps, blur and mean baselines)")
    for suffix, baseline in (("", "blur"), ("_mean", "mean")):
        for mode in ("deletion", "insertion"):
            curves = deletion_curves(score, images, picked, targets, steps=config.steps, mode=mode,  # type: ignore[arg-type]
                                     baseline=baseline, blur_sigma=config.blur_sigma, **kw)
            per[f"{mode}_auc{suffix}"] = curves.auc()
    say(f"{name}: ROAD at {list(config.road_percentages)} %, MoRF and LeRF")
    for order in ("morf", "lerf"):
        per[f"road_{order}"] = road_curves(score, images, picked, targets, percentages=config.road_percentages,
                                           order=order, noise=config.road_noise, seed=config.seed, **kw).mean()  # type: ignore[arg-type]
    say(f"{name}: faithfulness correlation ({config.fc_runs} runs)")
    per["faithfulness_corr"] = faithfulness_correlation(  # on logits, as Quantus (softmax=False by default)
        _scores(model, logits=True), images, picked, targets, n_runs=config.fc_runs,
        subset_size=min(config.fc_subset, images.shape[-2] * images.shape[-1] // 2), seed=config.seed, **kw)
    dx_columns = torch.arange(n_char, n_char + len(model.config.diagnoses))
    for j, method in enumerate(ok):
        columns[method] = {}
        for key, value in per.items():
            columns[method].update(_named(key, _estimate(stems, candidate.fold, value[:, j], config)))
        rl = random_logit(maps[method], predicted, dx_columns, seed=config.seed)
        columns[method].update(_named("random_logit", _estimate(stems, candidate.fold, rl, config)))
    layers = randomisation_layers(model)
    positions = set(_cascade_positions(len(layers), config.mprt_steps))
    say(f"{name}: cascading randomisation, {len(layers)} layers, maps at {len(positions)} of them")
    curves_of: dict[str, list[dict[str, Any]]] = {m: [] for m in ok}
    last: dict[str, tuple[Tensor, Tensor]] = {}
    ranks = {m: average_ranks(maps[m]) for m in ok}  # the trained maps' ranks, shared by every step
    for step, (layer, randomised) in enumerate(cascading_randomisation(model, seed=config.seed)):
        if step not in positions:
            continue
        for method, random_maps in _method_maps(randomised, ok, images, config.batch_size).items():
            rho = spearman(maps[method], random_maps, a_ranks=ranks[method])
            sim = ssim(maps[method], random_maps)
            last[method] = (rho, sim)
            curves_of[method].append({"layer": layer, "step": step + 1, "spearman": _nanmean(rho),
                                      "ssim": _nanmean(sim)})
    board.mprt_curves.setdefault(name, {}).update(curves_of)
    say(f"{name}: sensitivity ({config.sensitivity_samples} draws, radius {config.sensitivity_radius})")
    n_targets = maps[ok[0]].shape[1]

    def all_maps(x: Tensor) -> Tensor:
        """Every method's maps side by side along the target axis ``(B, M·T, H, W)``: one pass per draw."""
        return torch.cat(list(_method_maps(model, ok, x, config.batch_size).values()), dim=1)

    sens = sensitivity(all_maps, images, n_samples=config.sensitivity_samples, radius=config.sensitivity_radius,
                       seed=config.seed, maps=torch.cat([maps[m] for m in ok], dim=1))
    for j, method in enumerate(ok):
        rho, sim = last[method]
        columns[method].update(_named("mprt_spearman", _estimate(stems, candidate.fold, rho, config)))
        columns[method].update(_named("mprt_ssim", _estimate(stems, candidate.fold, sim, config)))
        part = slice(j * n_targets, (j + 1) * n_targets)
        columns[method].update(_named("max_sensitivity", _estimate(stems, candidate.fold, sens.max[:, part], config)))
        columns[method].update(_named("avg_sensitivity", _estimate(stems, candidate.fold, sens.avg[:, part], config)))
    _add_examples(board, name, images[:1], {m: maps[m][0, int(predicted[0])] for m in ok}, candidate)
    return columns


def _nanmean(values: Tensor) -> float:
    defined = values[~torch.isnan(values)]
    return float(defined.mean()) if defined.numel() else math.nan


def _named(key: str, e: dict[str, float]) -> dict[str, float]:
    return {key: e["mean"], f"{key}_low": e["low"], f"{key}_high": e["high"]}


def _add_examples(board: Leaderboard, name: str, image: Tensor, maps: dict[str, Tensor], candidate: Candidate) -> None:
    m, s = torch.tensor(candidate.mean)[:, None, None], torch.tensor(candidate.std)[:, None, None]
    board.examples.setdefault(f"image:{name}", (image[0] * s + m).clamp(0, 1).permute(1, 2, 0).numpy())
    for method, map_ in maps.items():
        board.examples[f"map:{name}:{method}"] = map_.numpy().astype(np.float16)


def run_leaderboard(db: DermXDB, models: Sequence[tuple[str, str | Path]], methods: Sequence[str] | str,
                    config: LeaderboardConfig | None = None, *,
                    progress: Callable[[Iterable[Any], str, int], Iterable[Any]] | None = None,
                    say: Callable[[str], None] | None = None, available: Sequence[str] | None = None,
                    allow_overlap: bool = False, aliases: Aliases | None = None) -> Leaderboard:
    """Score every (model, method) cell (module docstring). ``models``: (name, checkpoint / run / cv
    folder). Each model is tested on the images :func:`~dermx.evaluate.candidates.load_candidates`
    chooses (``available``: the stems the image folder holds; ``allow_overlap`` and ``aliases`` as
    there). Problems of one cell are recorded in ``excluded`` and reported through ``say``."""
    say = say or (lambda _m: None)
    wrap = progress or (lambda it, _d, _n: it)
    valid, unknown = parse_methods(methods)
    config = config or LeaderboardConfig()
    config = LeaderboardConfig(**{**config.to_dict(), "methods": tuple(valid)})
    board = Leaderboard(config=config)
    say(f"settings: agreement on every test image (Score-CAM: the first {config.score_images or 'all'}); "
        f"faithfulness, sanity and robustness on the first {config.n_images}; deletion/insertion "
        f"{config.steps} steps; ROAD at {list(config.road_percentages)} %; MPRT maps at {config.mprt_steps} "
        f"cascade positions; {config.sensitivity_samples} sensitivity draws; {config.fc_runs} "
        f"faithfulness-correlation subsets; {config.n_boot} bootstrap resamples")
    for message in unknown:
        board.excluded.append({"model": "*", "method": message.split("'")[1] if "'" in message else message,
                               "reason": message})
        say(message)
    tested: dict[str, set[str]] = {}
    for name, path in models:
        try:
            candidates = load_candidates(name, path, db, BenchmarkConfig(threshold=config.threshold),
                                         available=available, allow_overlap=allow_overlap, aliases=aliases)
        except (ValueError, OSError, KeyError, RuntimeError) as error:
            for method in valid:
                board.excluded.append({"model": name, "method": method, "reason": f"cannot load {path}: {error}"})
            say(f"{name}: cannot load {path} ({error}); other models continue")
            continue
        tested[name] = {s for c in candidates for s in c.stems}
        for candidate in candidates:  # ~30 % faster CPU convolutions; outputs equal to ~1e-5
            candidate.explain.model.to(memory_format=torch.channels_last)  # type: ignore[attr-defined]
        per_fold: list[dict[str, dict[str, float]]] = []
        for candidate in candidates:
            try:
                per_fold.append(_model_metrics(db, name, candidate, valid, config, board, say))
            except Exception as error:  # one model's failure must not lose the other cells
                say(f"{name}: faithfulness/sanity failed: {error}\n{traceback.format_exc(limit=3)}")
                for method in valid:
                    board.excluded.append({"model": name, "method": method, "reason": f"failed: {error}"})
                per_fold = []
                break
        ok = [m for m in valid if per_fold and all(m in f for f in per_fold)]
        n_test = sum(len(c.stems) for c in candidates)
        limit = config.score_images
        for method in ok:
            if get_method(method).uses_scores and limit is not None and any(limit < len(c.stems) for c in candidates):
                board.notes.append(f"{name} / {method}: agreement on the first {limit} test images "
                                   f"(sorted stems) per fold, not all {n_test}: it needs one forward pass per "
                                   "channel of the CAM layer per image (--n-scorecam-images N|all)")
                say(board.notes[-1])
        try:
            agreement = _agreement(db, candidates, ok, config, wrap) if ok else {}
        except (ValueError, RuntimeError, KeyError) as error:
            for method in ok:
                board.excluded.append({"model": name, "method": method, "reason": f"agreement failed: {error}"})
            say(f"{name}: agreement failed ({error})")
            agreement = {}
        for method in ok:
            if method not in agreement:
                continue
            row: dict[str, Any] = {"model": name, "method": method, **agreement[method]}
            row.update(_mean_over_folds(per_fold, method))
            row["n_images"] = sum(min(config.n_images, len(c.stems)) for c in candidates)
            board.rows.append(row)
            for metric, reason in _undefined(row):
                board.undefined.append({"model": name, "method": method, "metric": metric, "reason": reason})
                say(f"{name} / {method}: {metric} undefined ({reason}); the row is kept, and left out of "
                    "leaderboard.csv")
    if config.protocol == "followup":
        board.notes += _across_models(board.rows)
    names = list(tested)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if tested[a] != tested[b]:
                board.notes.append(f"{a} and {b} were tested on different images ({len(tested[a])} and "
                                   f"{len(tested[b])}, {len(tested[a] & tested[b])} shared): their rows are not "
                                   "paired comparisons")
                say(board.notes[-1])
    return board


def _undefined(row: dict[str, Any]) -> list[tuple[str, str]]:
    """(column, reason) of each non-finite value of a row: a metric undefined on every image
    (:data:`UNDEFINED_WHY`), or only its interval or spread (its ``_low``, ``_high``, ``_fold_sd``)."""
    bad = [k for k, v in row.items() if _undefined_value(v)]
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


def _mean_over_folds(per_fold: list[dict[str, dict[str, float]]], method: str) -> dict[str, float]:
    keys = per_fold[0][method].keys()
    return {k: float(np.mean([f[method][k] for f in per_fold])) for k in keys}


def write_leaderboard(board: Leaderboard, out: str | Path) -> list[Path]:
    """``leaderboard.csv`` (finite rows), ``leaderboard.json`` (everything) and ``leaderboard_examples.npz``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    board.frame().to_csv(out / "leaderboard.csv", index=False)
    write_json(out / "leaderboard.json", {
        "version": 1, "config": board.config.to_dict(), "directions": DIRECTIONS, "protocol": board.config.protocol,
        "rows": [{k: (None if _undefined_value(v) else v) for k, v in r.items()}
                 for r in board.rows],
        "excluded": board.excluded, "undefined": board.undefined, "notes": board.notes,
        "mprt_curves": board.mprt_curves})
    np.savez_compressed(out / "leaderboard_examples.npz", **board.examples)
    return [out / "leaderboard.csv", out / "leaderboard.json", out / "leaderboard_examples.npz"]
