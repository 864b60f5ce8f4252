"""The experts' reference maps of a DermXDB image: the targets of training and of the benchmark.

One provider, :class:`ReferenceMaps`, rasterises the raters' outlines of an image at a size
(:meth:`DermXDB.rater_stack <dermx.data.DermXDB.rater_stack>`, through the mask cache) and fuses the
raters (:func:`~dermx.data.fusion.fuse`). It returns float channels ``(channels, h, w)``:

- ``channels="fused"`` (training targets): the fused map of each of ``characteristics``;
- with ``annotators``, only those raters are fused (a held-out-raters protocol: the training targets
  from some raters, the benchmark's references from the others); default every first-pass rater;
- ``channels="benchmark"`` (:data:`REFERENCE_CHANNELS`): the 16 fused maps, then ``union`` (each
  rater's union over the characteristics, then fused), ``lesions`` (crisp: outlined by ≥ 1 rater) and
  ``watermark`` (the crisp watermark box of a synthetic image with the shortcut; zeros otherwise).
  With ``drawn`` (a synthetic dataset's folder), 16 more channels follow (:data:`DRAWN_CHANNELS`):
  the lesions the generator drew, resized like the raters' masks (area coverage ≥ 1/2).

:meth:`ReferenceMaps.for_benchmark` finds the watermark boxes and drawn lesions of a synthetic dataset
(``synth.json``, ``ground_truth/``). A provider is a picklable callable ``(stem, (h, w) or None) →
Tensor`` (``None``: native size), the ``map_fn`` of :class:`dermx.train.ImageDataset`, so data-loader
workers can use it. :class:`RaterMasks` is the provider of the raters' own masks, unfused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from dermx import vocab
from dermx.data.dataset import DermXDB
from dermx.data.fusion import FusionRule, fuse
from dermx.data.masks import Size, resize_mask
from dermx.data.synth.watermark import Bounds, box_mask
from dermx.data.synth.writer import GROUND_TRUTH_DIR, MANIFEST, load_ground_truth, read_synth_manifest

Channels = Literal["fused", "benchmark"]
UNION = "union"
#: The channels of ``channels="benchmark"``, in order.
REFERENCE_CHANNELS: tuple[str, ...] = (*vocab.CHARACTERISTICS, UNION, "lesions", "watermark")
#: The known-answer channels that follow on synthetic data: the drawn lesions per characteristic.
DRAWN_CHANNELS: tuple[str, ...] = tuple(f"drawn:{c}" for c in vocab.CHARACTERISTICS)


@dataclass(frozen=True)
class ReferenceMaps:
    """The reference channels of an image at a size (module docstring).

    ``watermarks`` maps a stem to its watermark box (x0, y0, x1, y1) in native pixels; ``drawn`` is the
    folder of a synthetic dataset whose drawn lesions to add. Both apply to ``channels="benchmark"``,
    which needs the 16 characteristics.
    """

    db: DermXDB
    rule: FusionRule = "mean"
    characteristics: tuple[str, ...] = vocab.CHARACTERISTICS
    channels: Channels = "fused"
    watermarks: Mapping[str, Bounds | None] = field(default_factory=dict)
    drawn: Path | None = None
    annotators: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.channels not in ("fused", "benchmark"):
            raise ValueError(f"channels must be 'fused' or 'benchmark', got {self.channels!r}")
        if self.channels == "benchmark" and tuple(self.characteristics) != vocab.CHARACTERISTICS:
            raise ValueError("benchmark channels are built on the 16 characteristics of vocab.CHARACTERISTICS")
        if self.channels == "fused" and (self.watermarks or self.drawn is not None):
            raise ValueError("watermarks and drawn lesions are benchmark channels (channels='benchmark')")

    @classmethod
    def for_benchmark(cls, db: DermXDB, rule: FusionRule = "mean",
                      annotators: Sequence[str] | None = None) -> ReferenceMaps:
        """Every benchmark channel of ``db``, with a synthetic dataset's watermarks and drawn lesions;
        ``annotators``: the raters whose outlines make the references (default: every first-pass rater)."""
        return cls(db, rule, channels="benchmark", watermarks=synthetic_watermarks(db.root),
                   drawn=drawn_truth(db.root), annotators=tuple(annotators) if annotators is not None else None)

    @property
    def names(self) -> tuple[str, ...]:
        """The name of each channel, in order."""
        if self.channels == "fused":
            return tuple(self.characteristics)
        return REFERENCE_CHANNELS + (DRAWN_CHANNELS if self.drawn is not None else ())

    def __call__(self, stem: str, size: Size | None) -> Tensor:
        stack = self.db.rater_stack(stem, annotators=self.annotators, characteristics=self.characteristics,
                                    size=size)  # (C, R, h, w) bool
        fused = fuse(stack, self.rule)
        if self.channels == "fused":
            return fused
        record = self.db.images[stem]
        outlined = stack.any(dim=0)  # (R, h, w): each rater's union over the characteristics
        mark = resize_mask(box_mask(self.watermarks.get(stem), (record.height, record.width)), size)
        channels = [fused, fuse(outlined, self.rule)[None], outlined.any(dim=0)[None].float(),
                    torch.from_numpy(mark.copy())[None].float()]
        if self.drawn is not None:
            truth = load_ground_truth(self.drawn, stem).numpy()
            channels.append(torch.from_numpy(np.stack([resize_mask(m, size) for m in truth])).float())
        return torch.cat(channels)


@dataclass(frozen=True)
class RaterMasks:
    """The raters' own binary masks of an image, unfused: ``(annotator × characteristic, h, w)`` uint8,
    the annotators of ``annotators`` (default: every first-pass rater of ``db``) in that order, each with
    its 16 characteristics; zeros for an annotator who did not rate the image. A ``map_fn`` of
    :class:`dermx.train.ImageDataset`, so the masks are placed on a model's input exactly as the fused
    references are; :meth:`rated` says which annotators rated an image."""

    db: DermXDB
    annotators: tuple[str, ...]

    @classmethod
    def of(cls, db: DermXDB, annotators: Sequence[str] | None = None) -> RaterMasks:
        return cls(db, tuple(annotators) if annotators is not None else tuple(db.annotators()))

    def rated(self, stem: str) -> list[int]:
        """Indices (into :attr:`annotators`) of the annotators who rated ``stem``."""
        names = {r.annotator for r in self.db.ratings_of(stem, self.annotators)}
        return [i for i, a in enumerate(self.annotators) if a in names]

    def __call__(self, stem: str, size: Size | None) -> Tensor:
        stack = self.db.rater_stack(stem, annotators=self.annotators, size=size)  # (C, R_rated, h, w)
        out = torch.zeros((len(self.annotators), stack.shape[0], *stack.shape[-2:]), dtype=torch.uint8)
        out[self.rated(stem)] = stack.transpose(0, 1).to(torch.uint8)
        return out.flatten(0, 1)


def synthetic_watermarks(root: str | Path) -> dict[str, Bounds | None]:
    """Watermark boxes of a synthetic dataset (``synth.json``); empty for any other folder."""
    if not (Path(root) / MANIFEST).is_file():
        return {}
    return {e["stem"]: tuple(e["watermark"]) if e["watermark"] else None for e in read_synth_manifest(root)["images"]}


def drawn_truth(root: str | Path) -> Path | None:
    """``root`` if it is a synthetic dataset with the generator's drawn lesions (``ground_truth/``)."""
    return Path(root) if (Path(root) / GROUND_TRUTH_DIR).is_dir() else None
