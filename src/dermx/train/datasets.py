"""Torch datasets of labelled images, with fused expert maps for DermXDB, and joint transforms.

An :class:`Item` is one image: its file, reference diagnosis (index into the model's classes:
``vocab.DIAGNOSES`` for DermXDB), patient group, characteristic labels and (for DermXDB) a stem to
fetch fused maps for. Items come from a DermXDB folder (:func:`dermxdb_items`), or from class
sub-folders or a table of the user's own vocabulary (:mod:`dermx.train.collection`).

Geometry (same for image and maps) is :mod:`dermx.geometry`'s: resize by the resolution policy,
centre pad/crop to the input size, and for training the augmentation of its ``joint_transform``, with
the maps wrapped as ``tv_tensors.Mask`` so they follow the image's geometry and skip colour changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from dermx import vocab
from dermx.data import DermXDB, DermXDBError, load_rgb
from dermx.geometry import InputSpec, fit_image, joint_transform
from dermx.train.config import LabelRule

Size = tuple[int, int]
#: ``map_fn(key, (h, w))``: the reference maps of an image at its resized size, e.g. a
#: :class:`dermx.data.ReferenceMaps`.
MapFn = Callable[[str, Size], torch.Tensor]


@dataclass(frozen=True)
class Item:
    """One training image."""

    key: str
    path: Path
    diagnosis: int
    group: str
    characteristics: tuple[float, ...] = ()
    size: tuple[int, int] | None = None  # expected (width, height), checked when loading


def characteristic_labels(db: DermXDB, stem: str, characteristics: Sequence[str],
                          rule: LabelRule = "any", annotators: Sequence[str] | None = None) -> tuple[float, ...]:
    """1 for a characteristic outlined by ≥ 1 rater (``any``) or by more than half (``majority``) of the
    raters of ``annotators`` (default: every first-pass rater) who rated the image."""
    ratings = db.ratings_of(stem, annotators)
    counts = [sum(c in r.characteristics for r in ratings) for c in characteristics]
    need = 1 if rule == "any" else len(ratings) / 2 + 1e-9
    return tuple(float(n >= need and n > 0) for n in counts)


def dermxdb_items(db: DermXDB, stems: Sequence[str], characteristics: Sequence[str],
                  rule: LabelRule = "any", *, find_images: bool = True,
                  annotators: Sequence[str] | None = None) -> list[Item]:
    """Items of DermXDB images with a reference diagnosis among the six classes (others skipped), their
    characteristic labels from the raters of ``annotators`` (default: every first-pass rater).

    ``find_images=False`` leaves each item's path unresolved (``Path(stem)``): for labels and
    fingerprints of images the image folder may not hold."""
    items = []
    for stem in stems:
        record = db.images.get(stem)
        if record is None or record.diagnosis not in vocab.DIAGNOSES:
            continue
        path = db.image_path(stem) if find_images else Path(stem)
        items.append(Item(stem, path, vocab.DIAGNOSES.index(record.diagnosis), record.patient,
                          characteristic_labels(db, stem, characteristics, rule, annotators),
                          (record.width, record.height)))
    return items


def check_items(items: Sequence[Item]) -> None:
    """Raise :class:`DermXDBError` listing missing images and images whose size (after EXIF
    orientation) does not match the annotations."""
    problems = []
    for item in items:
        if not item.path.is_file():
            problems.append(f"{item.key}: image file {item.path} not found")
            continue
        if item.size is None:
            continue
        with Image.open(item.path) as image:
            width, height = image.size
            if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                width, height = height, width
        if (width, height) != tuple(item.size):
            problems.append(f"{item.key}: image is {width}x{height}, annotations expect "
                            f"{item.size[0]}x{item.size[1]}")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise DermXDBError(f"{len(problems)} image problem(s): " + "; ".join(problems[:5]) + more)


class ImageDataset(Dataset[dict[str, torch.Tensor]]):
    """Samples ``{"image", "diagnosis", "characteristics", "index"}`` (+ ``"maps"`` with ``map_fn``), fed
    to a model as its :class:`~dermx.geometry.InputSpec` says.

    ``map_fn(key, (h, w))`` returns the reference maps of an image at its resized size. With
    ``in_memory``, resized images and maps are kept after the first load (augmentation still runs).
    """

    def __init__(self, items: Sequence[Item], spec: InputSpec, *, augment: bool = False, map_fn: MapFn | None = None,
                 in_memory: bool = False, color_jitter: bool = True) -> None:
        self.items = list(items)
        self.spec = spec
        self.map_fn = map_fn
        self.transform = joint_transform(spec.size, spec.mean, spec.std, augment=augment, color_jitter=color_jitter)
        self._memo: dict[int, tuple[torch.Tensor, torch.Tensor | None]] | None = {} if in_memory else None

    def __len__(self) -> int:
        return len(self.items)

    def _load(self, index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self._memo is not None and index in self._memo:
            return self._memo[index]
        item = self.items[index]
        image = fit_image(load_rgb(item.path, item.size), self.spec.size, self.spec.policy)
        pixels = TF.pil_to_tensor(image)
        maps = self.map_fn(item.key, (image.height, image.width)) if self.map_fn is not None else None
        if self._memo is not None:
            self._memo[index] = (pixels, maps)
        return pixels, maps

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.items[index]
        pixels, maps = self._load(index)
        sample: dict[str, torch.Tensor] = {"image": tv_tensors.Image(pixels)}
        if maps is not None:
            sample["maps"] = tv_tensors.Mask(maps)
        sample = self.transform(sample)
        sample["image"] = sample["image"].as_subclass(torch.Tensor)
        if maps is not None:
            sample["maps"] = sample["maps"].as_subclass(torch.Tensor)
        sample["diagnosis"] = torch.tensor(item.diagnosis)
        sample["characteristics"] = torch.tensor(item.characteristics, dtype=torch.float32)
        sample["index"] = torch.tensor(index)
        return sample
