"""Faithfulness, sanity and robustness of every CAM method for one model (one fold), per image.

On the first ``n_images`` test images (sorted stems) of a :class:`~dermx.evaluate.candidates.Candidate`:
deletion / insertion AUC (blur and mean-colour baselines), ROAD (MoRF, LeRF) and faithfulness
correlation of the predicted diagnosis's map (:mod:`~dermx.evaluate.leaderboard.faithfulness`); the
cascading randomisation and random logit over every target's map
(:mod:`~dermx.evaluate.leaderboard.sanity`); max- and avg-sensitivity over every target's map
(:mod:`~dermx.evaluate.leaderboard.robustness`). Each metric is returned per image (a ``(B,)``
tensor, or ``(B, T)`` over targets, averaged over the defined targets when estimated), so that the
folds of a model are pooled per image before any interval is computed.

One forward pass (and one gradient computation) per batch gives every method's maps
(:meth:`~dermx.explain.CamEngine.explain_methods`), for the trained maps, each randomisation step
and each sensitivity draw.

The model passes run where the candidate's network is, at its compute's precision
(:meth:`Candidate.on <dermx.evaluate.candidates.Candidate.on>`); images, maps and scores stay float32
on the CPU between them, so every metric is computed there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from dermx.compute import Compute, full_precision, model_device
from dermx.data import DermXDB
from dermx.evaluate.candidates import Candidate
from dermx.evaluate.leaderboard.config import LeaderboardConfig
from dermx.evaluate.leaderboard.faithfulness import Baseline, deletion_curves, faithfulness_runs, road_curves
from dermx.evaluate.leaderboard.robustness import map_sensitivity
from dermx.evaluate.leaderboard.sanity import (
    average_ranks,
    cascading_randomisation,
    random_logit,
    randomisation_layers,
    spearman,
    ssim,
)
from dermx.evaluate.leaderboard.trust import map_differences
from dermx.explain import CamEngine
from dermx.metrics import pearson
from dermx.models import DermXNet

Say = Callable[[str], None]


@dataclass
class ModelMetrics:
    """One model's (fold's) per-image metrics: ``values[method][metric]`` of shape (B,) or (B, T) on
    ``stems``; ``map_differences``: the largest difference of every two methods' trained maps
    (:func:`~dermx.evaluate.leaderboard.trust.map_differences`); ``fc_runs[method]``: the two sides of
    the faithfulness correlation run by run, (B, R) each
    (:func:`~dermx.evaluate.leaderboard.faithfulness.faithfulness_runs`); ``failed``: methods that could
    not explain, with the reason; ``curves``: the MPRT curve of each method (mean similarity and
    share of undefined maps at each evaluated cascade step); ``example``: the first image and each
    method's map of its predicted diagnosis."""

    stems: list[str]
    values: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    map_differences: dict[tuple[str, str], float] = field(default_factory=dict)
    fc_runs: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    example: dict[str, np.ndarray] = field(default_factory=dict)


def scores(model: DermXNet, *, logits: bool = False, precision: str = "32") -> Callable[[Tensor], Tensor]:
    """Images → every target's probability (or logit), in the engine's column order (characteristics,
    diagnoses): the pass on the model's device at ``precision``, the scores float32 on the CPU."""
    device = model_device(model)

    def score(images: Tensor) -> Tensor:
        with Compute(precision=precision).autocast(device):
            out = {k: full_precision(v) for k, v in model(images.to(device)).items()}
        if logits:
            return torch.cat([out[k] for k in ("characteristic", "diagnosis") if k in out], dim=1).cpu()
        p = model.probabilities(out)
        return torch.cat([p.characteristic, p.diagnosis], dim=1).cpu()

    return score


def method_maps(model: DermXNet, methods: Sequence[str], images: Tensor, batch_size: int,
                precision: str = "32") -> dict[str, Tensor]:
    """Every target's map ``(B, T, H, W)`` under each method, all methods from one pass per batch (on the
    model's device at ``precision``; the maps float32 on the CPU)."""
    engine = CamEngine(model, methods[0], model.config.cam_layer, size="input", precision=precision)
    parts: dict[str, list[Tensor]] = {m: [] for m in methods}
    for start in range(0, len(images), batch_size):
        for method, result in engine.explain_methods(images[start:start + batch_size], methods).items():
            parts[method].append(result.maps.detach().cpu())
    return {m: torch.cat(p) for m, p in parts.items()}


def cascade_positions(n_layers: int, steps: int) -> list[int]:
    """Indices (0-based) of the cascade steps evaluated: evenly spaced, the last always included."""
    steps = max(1, min(steps, n_layers))
    return sorted({round((k + 1) * n_layers / steps) - 1 for k in range(steps)})


def _nanmean(values: Tensor) -> float:
    defined = values[~torch.isnan(values)]
    return float(defined.mean()) if defined.numel() else math.nan


def model_metrics(db: DermXDB, candidate: Candidate, methods: Sequence[str], config: LeaderboardConfig,
                  say: Say) -> ModelMetrics:
    """Every metric of every method on the candidate's first ``config.n_images`` test images (module
    docstring); a method that cannot explain is left out with its reason in ``failed``."""
    model = candidate.model
    if model is None:
        raise ValueError(f"{candidate.label}: a stand-in without a network has no faithfulness to measure")
    model.eval()
    stems = sorted(candidate.stems)[: config.n_images]
    images = torch.cat([b["image"] for _, b in candidate.batches(db, stems, batch_size=64)])
    precision = candidate.compute.precision
    score = scores(model, precision=precision)
    n_char = len(model.config.characteristics)
    with torch.no_grad():
        probabilities = score(images)
    predicted = n_char + probabilities[:, n_char:].argmax(dim=1)
    out = ModelMetrics(stems)
    ok = []
    for method in methods:  # one image per method finds the cells that cannot be computed
        try:
            method_maps(model, [method], images[:1], 1, precision)
            ok.append(method)
        except (ValueError, RuntimeError) as error:
            out.failed[method] = f"cannot explain: {error}"
            say(f"{candidate.name} / {method}: cannot explain ({error}); other cells continue")
    if not ok:
        return out
    maps = method_maps(model, ok, images, config.batch_size, precision)
    out.map_differences = map_differences(maps)
    index = torch.arange(len(images))
    picked = torch.stack([maps[m][index, predicted] for m in ok], dim=1)  # (B, M, H, W)
    targets = predicted[:, None].expand(-1, len(ok))
    batch = config.batch_size
    per: dict[str, Tensor] = {}
    say(f"{candidate.name}: deletion and insertion ({config.steps} steps, blur and mean baselines)")
    baselines: tuple[tuple[str, Baseline], ...] = (("", "blur"), ("_mean", "mean"))
    modes: tuple[Literal["deletion", "insertion"], ...] = ("deletion", "insertion")
    for suffix, baseline in baselines:
        for mode in modes:
            curves = deletion_curves(score, images, picked, targets, steps=config.steps, mode=mode,
                                     baseline=baseline, blur_sigma=config.blur_sigma, batch_size=batch)
            per[f"{mode}_auc{suffix}"] = curves.auc()
    say(f"{candidate.name}: ROAD at {list(config.road_percentages)} %, MoRF and LeRF")
    orders: tuple[Literal["morf", "lerf"], ...] = ("morf", "lerf")
    for order in orders:
        per[f"road_{order}"] = road_curves(score, images, picked, targets, percentages=config.road_percentages,
                                           order=order, noise=config.road_noise, seed=config.seed,
                                           batch_size=batch).mean()
    say(f"{candidate.name}: faithfulness correlation ({config.fc_runs} runs)")
    sums, drops = faithfulness_runs(  # on logits, as Quantus (softmax=False by default)
        scores(model, logits=True, precision=precision), images, picked, targets, n_runs=config.fc_runs,
        subset_size=min(config.fc_subset, images.shape[-2] * images.shape[-1] // 2), seed=config.seed,
        batch_size=batch)
    per["faithfulness_corr"] = pearson(sums, drops).float()
    dx_columns = torch.arange(n_char, n_char + len(model.config.diagnoses))
    for j, method in enumerate(ok):
        out.values[method] = {key: value[:, j] for key, value in per.items()}
        out.fc_runs[method] = (sums[:, j], drops[:, j])
        out.values[method]["random_logit"] = random_logit(maps[method], predicted, dx_columns, seed=config.seed)
    layers = randomisation_layers(model)
    positions = set(cascade_positions(len(layers), config.mprt_steps))
    say(f"{candidate.name}: cascading randomisation, {len(layers)} layers, maps at {len(positions)} of them")
    out.curves = {m: [] for m in ok}
    last: dict[str, tuple[Tensor, Tensor]] = {}
    ranks = {m: average_ranks(maps[m]) for m in ok}  # the trained maps' ranks, shared by every step
    for step, (layer, randomised) in enumerate(cascading_randomisation(model, seed=config.seed)):
        if step not in positions:
            continue
        for method, random_maps in method_maps(randomised, ok, images, config.batch_size, precision).items():
            rho = spearman(maps[method], random_maps, a_ranks=ranks[method])
            sim = ssim(maps[method], random_maps)
            last[method] = (rho, sim)
            undefined = float(torch.isnan(rho).float().mean())  # the share of maps without a rank correlation
            out.curves[method].append({"layer": layer, "step": step + 1, "spearman": _nanmean(rho),
                                       "ssim": _nanmean(sim), "undefined": undefined})
    say(f"{candidate.name}: sensitivity ({config.sensitivity_samples} draws, radius {config.sensitivity_radius})")
    n_targets = maps[ok[0]].shape[1]

    def all_maps(x: Tensor) -> Tensor:
        """Every method's maps side by side along the target axis ``(B, M·T, H, W)``: one pass per draw."""
        return torch.cat(list(method_maps(model, ok, x, config.batch_size, precision).values()), dim=1)

    sens = map_sensitivity(all_maps, images, n_samples=config.sensitivity_samples, radius=config.sensitivity_radius,
                       seed=config.seed, maps=torch.cat([maps[m] for m in ok], dim=1))
    for j, method in enumerate(ok):
        rho, sim = last[method]
        part = slice(j * n_targets, (j + 1) * n_targets)
        out.values[method].update({"mprt_spearman": rho, "mprt_ssim": sim, "max_sensitivity": sens.max[:, part],
                                   "avg_sensitivity": sens.avg[:, part]})
    out.example = {"image": candidate.spec.denormalise(images[:1])[0].permute(1, 2, 0).numpy(),
                   **{f"map:{m}": maps[m][0, int(predicted[0])].numpy().astype(np.float16) for m in ok}}
    return out
