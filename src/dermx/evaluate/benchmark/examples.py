"""The benchmark's example images: chosen by rule after scoring, then explained again to keep their maps.

Rule, per reference class (:func:`choose_examples`), with an image's *agreement* the mean over models of
its characteristic maps' Dice against the experts (pairs of characteristics the experts outlined):

- ``correct``: among the images every model diagnosed correctly, the one of median agreement (typical);
- ``incorrect``: the misdiagnosed image with the most confident wrong answer of any model;
- ``best agreement`` and ``worst agreement``: the images of highest and lowest agreement;
- ``watermarked``: on synthetic data with a shortcut class, up to two watermarked images of that class.

An image chosen by several rules is shown once with every reason. For each example ``examples.npz``
(layout in :mod:`dermx.runs.examples`) holds the image, the experts' maps (union, each
characteristic's fused map, the watermark) and every first-pass rater's mask of every characteristic
(bit-packed) on the model input grid, and per model its diagnosis map, characteristic maps and
probabilities (:class:`Examples`). The rater masks ride through the model's preprocessing as extra
reference channels (:class:`WithRaterMasks`), so they are placed exactly like the fused maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from dermx import vocab
from dermx.data import REFERENCE_CHANNELS, RaterMasks, ReferenceMaps
from dermx.evaluate.benchmark.summary import shortcut_class
from dermx.evaluate.candidates import Candidate, Explanation
from dermx.geometry import InputSpec, Placement, Size, resize
from dermx.runs.examples import INSIDE, RATER_MASKS, RATER_NAMES
from dermx.runs.tables import image_dice

__all__ = ["Examples", "WithRaterMasks", "choose_examples"]

N_CHARACTERISTICS = len(vocab.CHARACTERISTICS)


def agreement(items: pd.DataFrame) -> pd.Series:
    """Per stem: the mean over models of :func:`image_dice` (the image's *agreement*)."""
    return image_dice(items).groupby("stem").mean()


def choose_examples(images: pd.DataFrame, items: pd.DataFrame) -> dict[str, list[str]]:
    """``stem → reasons`` by the module's rule; stems in class order, then by rule."""
    score = agreement(items)
    shortcut = shortcut_class(images)
    chosen: dict[str, list[str]] = {}

    def take(stem: str | None, reason: str) -> None:
        if stem is not None:
            chosen.setdefault(stem, []).append(reason)

    for diagnosis in vocab.DIAGNOSES:
        rows = images[images["reference"] == diagnosis]
        if rows.empty:
            continue
        all_correct = rows.groupby("stem")["correct"].all()
        typical = score.reindex(all_correct[all_correct].index).dropna().sort_values()
        take(typical.index[len(typical) // 2] if len(typical) else None, "correct")
        wrong = rows[~rows["correct"].astype(bool)].sort_values("confidence", ascending=False)
        take(wrong["stem"].iloc[0] if len(wrong) else None, "incorrect")
        ranked = score.reindex(rows["stem"].unique()).dropna().sort_values()
        if len(ranked):
            take(ranked.index[-1], "best agreement")
            take(ranked.index[0], "worst agreement")
        if diagnosis == shortcut and "has_watermark" in rows:
            for stem in rows[rows["has_watermark"].astype(bool)]["stem"].unique()[:2]:
                take(stem, "watermarked")
    return chosen


def _display(images: Tensor, spec: InputSpec) -> np.ndarray:
    """Normalised (B, 3, h, w) inputs → (B, h, w, 3) uint8."""
    return spec.denormalise(images).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _resize(maps: Tensor, size: tuple[int, int]) -> np.ndarray:
    return resize(maps.float(), size).numpy().astype(np.float16)


@dataclass(frozen=True)
class WithRaterMasks:
    """A ``map_fn`` (:class:`dermx.train.ImageDataset`): the channels of ``references``, then each
    first-pass annotator's mask of every characteristic (:class:`dermx.data.RaterMasks`)."""

    references: ReferenceMaps

    @property
    def raters(self) -> RaterMasks:
        return RaterMasks.of(self.references.db)

    def annotators(self, stem: str | None = None) -> list[str]:
        """The first-pass annotators, or (``stem``) those who rated that image."""
        raters = self.raters
        return list(raters.annotators) if stem is None else [raters.annotators[i] for i in raters.rated(stem)]

    def __call__(self, stem: str, size: Size | None) -> Tensor:
        return torch.cat([self.references(stem, size), self.raters(stem, size).float()])


def _inside(original: Size, spec: InputSpec, shown: Size) -> np.ndarray:
    """The box ``(top, left, h, w)`` of an image of size ``original`` in the model input of ``spec``
    (:meth:`~dermx.geometry.Placement.of`), scaled to the ``shown`` grid of the examples."""
    top, left, height, width = Placement.of(original, spec.size, spec.policy).inside
    sy, sx = shown[0] / spec.size[0], shown[1] / spec.size[1]
    return np.asarray([round(top * sy), round(left * sx), round(height * sy), round(width * sx)], np.int32)


class Examples:
    """Collects, for fixed stems (with their reasons), the image, the experts' maps, every rater's masks
    (batches made with :attr:`map_fn`) and each model's maps and probabilities, all on the first model's
    input grid."""

    def __init__(self, reasons: dict[str, list[str]], references: ReferenceMaps,
                 sizes: dict[str, Size]) -> None:
        self.reasons = reasons
        #: Each example image's own (h, w): where it sits in the model input (:data:`INSIDE`).
        self.sizes = sizes
        self.arrays: dict[str, dict[str, np.ndarray]] = {}
        self.size: tuple[int, int] | None = None
        #: The ``map_fn`` of the example images' datasets: the references, then the rater masks.
        self.map_fn = WithRaterMasks(references)
        self._n_references = len(references.names)

    def without_raters(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """``batch`` with only the reference channels in ``maps``: what a candidate is explained on."""
        return {**batch, "maps": batch["maps"][:, :self._n_references]}

    def add(self, model: str, stems: Sequence[str], batch: dict[str, Tensor], explanation: Explanation,
            candidate: Candidate) -> None:
        """Keep the rows of ``batch`` whose stems are examples."""
        rows = [i for i, s in enumerate(stems) if s in self.reasons]
        if not rows:
            return
        images, refs = batch["image"][rows], batch["maps"][rows]
        self.size = self.size or (int(images.shape[-2]), int(images.shape[-1]))
        size = self.size
        refs_small = _resize(refs, size)
        shown = _display(resize(images, size), candidate.spec)
        dx_maps = _resize(explanation.diagnosis_maps[rows], size)[:, 0]
        columns = [vocab.CHARACTERISTICS.index(c) for c in candidate.characteristics]
        chars = np.zeros((len(rows), N_CHARACTERISTICS, *size), np.float16)
        char_prob = np.full((len(rows), N_CHARACTERISTICS), np.nan, np.float32)
        if columns:
            chars[:, columns] = _resize(explanation.characteristic_maps[rows], size)
            char_prob[:, columns] = explanation.characteristic[rows].float().numpy()
        dx_prob = explanation.diagnosis[rows].float().numpy()
        for j, i in enumerate(rows):
            entry = self.arrays.setdefault(stems[i], {})
            if "image" not in entry:
                entry["image"] = shown[j]
                entry["union"] = refs_small[j, N_CHARACTERISTICS]
                entry["fused"] = refs_small[j, :N_CHARACTERISTICS]
                entry["watermark"] = refs_small[j, REFERENCE_CHANNELS.index("watermark")] > 0.5
                entry["present"] = batch["characteristics"][i].bool().numpy()
                entry["reference"] = np.asarray(vocab.DIAGNOSES[int(batch["diagnosis"][i])])
                entry["reasons"] = np.asarray(", ".join(self.reasons[stems[i]]))
                entry[INSIDE] = _inside(self.sizes[stems[i]], candidate.spec, size)
                masks = refs_small[j, self._n_references:].reshape(-1, N_CHARACTERISTICS, *size) > 0.5
                entry[RATER_MASKS] = np.packbits(masks, axis=-1)
                rated = set(self.map_fn.annotators(stems[i]))
                entry[RATER_NAMES] = np.asarray([a if a in rated else "" for a in self.map_fn.annotators()])
            entry[f"map:{model}"] = dx_maps[j]
            entry[f"chars:{model}"] = chars[j]
            entry[f"char_prob:{model}"] = char_prob[j]
            entry[f"dx_prob:{model}"] = dx_prob[j]
            entry[f"predicted:{model}"] = np.asarray(vocab.DIAGNOSES[int(dx_prob[j].argmax())])

    def arrays_by_key(self) -> dict[str, np.ndarray]:
        """``stems`` (N,) in the order chosen and, for each key, the (N, ...) stack over the stems seen by
        every model (the layout of :mod:`dermx.runs.examples`)."""
        seen = [s for s in self.reasons if s in self.arrays]
        keys = sorted(set.intersection(*(set(self.arrays[s]) for s in seen))) if seen else []
        return {"stems": np.asarray(seen), **{k: np.stack([self.arrays[s][k] for s in seen]) for k in keys}}

