"""Score one batch of model maps against the experts' fused maps: every (image, target) pair at once.

Reference channels of a batch (``refs``, ``(B, 19, h, w)``, :data:`dermx.data.REFERENCE_CHANNELS`, built
by :class:`dermx.data.ReferenceMaps`): the 16 fused characteristic maps, the fuzzy union of all
characteristics (each rater's union, then fused), the crisp lesion area (outlined by ≥ 1 rater) and
the crisp watermark box (all 0 when unknown). On synthetic data 16 more channels
(:data:`dermx.data.DRAWN_CHANNELS`) hold the known answer, the lesions the generator drew: every row
is then also scored against it, in ``drawn_<score>`` columns (the union rows against the union of the
drawn lesions), NaN where nothing of that characteristic was drawn. This separates a map that
disagrees with the raters from one that misses the lesion.

Rows produced (``kind``):

- ``characteristic``: the model's map of characteristic c against the fused map of c, for every c
  present in the reference (outlined by ≥ 1 rater) or predicted present (p ≥ threshold);
- ``diagnosis``: the map of the predicted diagnosis against the fused map of each present c;
- ``diagnosis-union``: the map of the predicted diagnosis against the union map.

Flags per row: ``present`` (reference), ``predicted`` (the model predicts the mapped characteristic;
always true for diagnosis maps), ``correct`` (predicted diagnosis = reference), ``miss`` (present in
the reference, predicted absent: the model's map of it is zeroed). Scores (module :mod:`dermx.metrics`,
:data:`SCORES`): fuzzy sensitivity, specificity, Dice, IoU (min t-norm); the pointing game as papers
define it (a 0/1 hit of the reference outlined by anyone, within ``pointing_tolerance`` × the shorter
side of the grid: 15/224, TorchRay's 15 px at a 224 px input) and dermx's fuzzy variant (the
reference's membership at the maximum, no tolerance); energy-based pointing (``Σ s·y / Σ s``).

**One rule for misses.** A characteristic the model calls absent has no map to show (the DermX
convention zeroes it). Every score of such a pair takes its worst value
(:attr:`dermx.metrics.MetricInfo.worst`: 0 for all of these): a map that shows nothing where the
experts outlined something earns nothing on any score, specificity included (an empty map avoids
the healthy skin trivially). The miss rate and the share of maps shown where no rater outlined
anything are reported beside the map scores (:mod:`dermx.evaluate.benchmark.summary`).

Baseline maps (uniform, centred Gaussian, random on the model's map grid) are scored on every (image,
reference) pair that some row of the batch uses, so that any selection of model pairs can be joined
with them on (stem, reference). Only the kept pairs are scored: they are gathered into one
(pairs, 1, h, w) stack and reduced at once.

Per image: probabilities (``dx:<class>``) and, when the model gives them, the logits behind them
(``logit:<class>``, NaN for a class the model lacks), prediction, and the share of the diagnosis map's
energy on the watermark and on the lesions, ``Σ s·m / Σ s`` for the crisp masks m, next to their area
shares (the score of a uniform map).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from dermx import vocab
from dermx.data.references import UNION
from dermx.evaluate.candidates import Explanation
from dermx.explain import baseline_like, random_maps
from dermx.metrics import METRICS, compute_metrics, energy_pointing, fuzzy_confusion

#: The benchmark's scores, by their :data:`dermx.metrics.METRICS` names (also the table columns).
SCORES: tuple[str, ...] = ("sensitivity", "specificity", "dice", "iou", "pointing", "fuzzy_pointing", "energy")
#: The pointing game's tolerance as a share of the shorter side of the grid maps are compared on:
#: TorchRay's 15 px at a 224 px model input.
POINTING_TOLERANCE = 15 / 224
KINDS: tuple[str, ...] = ("characteristic", "diagnosis", "diagnosis-union")
BASELINES: tuple[str, ...] = ("uniform", "gaussian", "random")
DRAWN = "drawn_"
_N = len(vocab.CHARACTERISTICS)


@dataclass(frozen=True)
class BatchTables:
    items: pd.DataFrame
    baselines: pd.DataFrame
    images: pd.DataFrame


def score_maps(maps: Tensor, refs: Tensor, *, tolerance: float = POINTING_TOLERANCE,
               misses: Tensor | None = None) -> dict[str, Tensor]:
    """Every score of :data:`SCORES` for maps ``(B, T, h, w)`` against refs (broadcastable), ``(B, T)``.
    ``tolerance``: the pointing game's, a share of the shorter side of the grid (the fuzzy variant takes
    none); ``misses`` (B, T) bool: pairs whose scores take their worst value (module docstring)."""
    pixels = tolerance * min(maps.shape[-2:])
    scores = compute_metrics(SCORES, maps, refs, tolerance={"pointing": pixels, "fuzzy_pointing": 0.0})
    out = {name: s.values for name, s in scores.items()}
    if misses is not None:
        out = {name: torch.where(misses, METRICS[name].worst, v) for name, v in out.items()}
    return out


def _rows(keep: Tensor, maps: Tensor, refs: Tensor, columns: dict[str, np.ndarray], tolerance: float,
          drawn: Tensor | None = None, misses: Tensor | None = None) -> pd.DataFrame:
    """One row per true entry of ``keep`` (B, T): ``columns`` (B, T) arrays, then the scores of the kept
    pairs only, gathered into one (pairs, 1, h, w) stack. ``maps`` has T channels or one (broadcast).
    With ``drawn`` (B, T, h, w) known-answer masks, also ``drawn_<score>`` (NaN where a mask is empty);
    ``misses`` (B, T): the pairs scored by the rule for misses."""
    b, t = keep.nonzero(as_tuple=True)
    pair_maps = maps[b, t if maps.shape[1] > 1 else 0][:, None]
    missed = misses[b, t][:, None] if misses is not None else None
    scores = score_maps(pair_maps, refs[b, t][:, None], tolerance=tolerance, misses=missed)
    if drawn is not None:
        truth = drawn[b, t][:, None]
        empty = truth.amax(dim=(1, 2, 3)) <= 0
        scores |= {DRAWN + name: values.masked_fill(empty[:, None], float("nan"))
                   for name, values in score_maps(pair_maps, truth, tolerance=tolerance, misses=missed).items()}
    rows, cols = b.numpy(), t.numpy()
    data = {name: values[rows, cols] for name, values in columns.items()}
    data.update({name: values[:, 0].double().numpy() for name, values in scores.items()})
    return pd.DataFrame(data)


def _grid(values: Sequence[str] | np.ndarray, batch: int) -> np.ndarray:
    """A (B, T) object array repeating ``values`` (length T) on every row."""
    return np.broadcast_to(np.asarray(values), (batch, len(values)))


def _column(values: Sequence[object] | np.ndarray, width: int) -> np.ndarray:
    """A (B, T) array repeating per-image ``values`` (length B) along each row."""
    return np.repeat(np.asarray(values)[:, None], width, axis=1)


def _baseline_rows(stems: np.ndarray, keep: Tensor, refs: Tensor, baselines: Sequence[str], seed: int,
                   tolerance: float, grid: tuple[int, int], drawn: Tensor | None = None) -> pd.DataFrame:
    """Each baseline's scores on the kept (image, reference) pairs of ``refs`` (B, 17, h, w) (and of
    the known answer ``drawn``, same layout, if given); the random maps are drawn on ``grid``, the
    model's map grid, and upsampled like its maps."""
    batch, n_refs, h, w = refs.shape
    frames = []
    for name in baselines:
        if name == "random":
            maps = random_maps(batch, n_refs, (h, w), seed=seed, grid=grid)
        else:
            maps = baseline_like(name, refs[:, :1])
        frames.append(_rows(keep, maps, refs, {
            "stem": _column(stems, n_refs), "reference": _grid((*vocab.CHARACTERISTICS, UNION), batch),
            "baseline": _grid([name] * n_refs, batch)}, tolerance, drawn))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _experts_against_drawn(fused: Tensor, drawn: Tensor, present: Tensor) -> np.ndarray:
    """Per image, the mean Dice of the experts' fused maps against the drawn lesions over the
    characteristics both outlined and drawn (NaN where there is none): how well the raters themselves
    find the known answer, the ceiling of the ``drawn_`` columns."""
    keep = present & (drawn.amax(dim=(-2, -1)) > 0)
    dice = fuzzy_confusion(fused, drawn).dice().values.double().masked_fill(~keep, float("nan"))
    return dice.nanmean(dim=1).numpy()


def score_batch(
    stems: Sequence[str],
    reference: Tensor,
    present: Tensor,
    refs: Tensor,
    explanation: Explanation,
    characteristics: Sequence[str],
    *,
    grid: tuple[int, int],
    threshold: float = 0.5,
    tolerance: float = POINTING_TOLERANCE,
    baselines: Sequence[str] = BASELINES,
    seed: int = 0,
) -> BatchTables:
    """Score a batch (module docstring). ``reference`` (B,) diagnosis indices; ``present`` (B, 16) bool;
    ``grid``: the model's map grid, on which the random baseline is drawn; ``tolerance``: the pointing
    game's, a share of the shorter side of the grid."""
    batch = len(stems)
    names = np.asarray(stems, dtype=object)
    fused, union = refs[:, :_N], refs[:, _N:_N + 1]
    lesions, watermark = refs[:, _N + 1:_N + 2], refs[:, _N + 2:_N + 3]
    drawn = refs[:, _N + 3:2 * _N + 3] if refs.shape[1] > _N + 3 else None
    dx_drawn = torch.cat([drawn, drawn.amax(dim=1, keepdim=True)], dim=1) if drawn is not None else None
    predicted = explanation.diagnosis.argmax(dim=1)
    correct = (predicted == reference).numpy()
    dx_names = np.asarray(vocab.DIAGNOSES, dtype=object)
    shared = {"stem": names, "correct": correct}
    frames = []
    if characteristics:
        index = [vocab.CHARACTERISTICS.index(c) for c in characteristics]
        is_present, is_predicted = present[:, index], explanation.characteristic >= threshold
        frames.append(_rows(is_present | is_predicted, explanation.characteristic_maps, fused[:, index], {
            **{k: _column(v, len(index)) for k, v in shared.items()},
            "kind": _grid(["characteristic"] * len(index), batch), "target": _grid(characteristics, batch),
            "reference": _grid(characteristics, batch), "present": is_present.numpy(),
            "predicted": is_predicted.numpy(), "miss": (is_present & ~is_predicted).numpy()}, tolerance,
            drawn[:, index] if drawn is not None else None, is_present & ~is_predicted))
    dx_refs = torch.cat([fused, union], dim=1)
    dx_present = torch.cat([present, present.any(dim=1, keepdim=True)], dim=1)
    width = _N + 1
    frames.append(_rows(dx_present, explanation.diagnosis_maps, dx_refs, {
        **{k: _column(v, width) for k, v in shared.items()},
        "kind": _grid(["diagnosis"] * _N + ["diagnosis-union"], batch),
        "target": _column(dx_names[predicted.numpy()], width),
        "reference": _grid((*vocab.CHARACTERISTICS, UNION), batch),
        "present": dx_present.numpy(), "predicted": np.ones((batch, width), dtype=bool),
        "miss": np.zeros((batch, width), dtype=bool)}, tolerance, dx_drawn))
    needed = dx_present.clone()
    if characteristics:
        needed[:, index] |= is_predicted
    dx_map = explanation.diagnosis_maps
    images = pd.DataFrame({
        "stem": names, "reference": dx_names[reference.numpy()], "predicted": dx_names[predicted.numpy()],
        "correct": correct, "confidence": explanation.diagnosis.amax(dim=1).double().numpy(),
        **{f"dx:{d}": explanation.diagnosis[:, i].double().numpy() for i, d in enumerate(vocab.DIAGNOSES)},
        **({f"logit:{d}": explanation.diagnosis_logits[:, i].double().numpy() for i, d in enumerate(vocab.DIAGNOSES)}
           if explanation.diagnosis_logits is not None else {}),
        **{f"char:{c}": explanation.characteristic[:, i].double().numpy() for i, c in enumerate(characteristics)},
        **{f"char_ref:{c}": present[:, vocab.CHARACTERISTICS.index(c)].numpy() for c in characteristics},
        "has_watermark": (watermark.amax(dim=(1, 2, 3)) > 0).numpy(),
        "dx_energy_watermark": energy_pointing(dx_map, watermark).values[:, 0].double().numpy(),
        "dx_energy_lesions": energy_pointing(dx_map, lesions).values[:, 0].double().numpy(),
        "area_watermark": watermark.mean(dim=(1, 2, 3)).double().numpy(),
        "area_lesions": lesions.mean(dim=(1, 2, 3)).double().numpy(),
        **({"experts_drawn_dice": _experts_against_drawn(fused, drawn, present)} if drawn is not None else {}),
    })
    return BatchTables(items=pd.concat(frames, ignore_index=True),
                       baselines=_baseline_rows(names, needed, dx_refs, baselines, seed, tolerance, grid, dx_drawn),
                       images=images)
