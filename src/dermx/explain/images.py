"""Image files → model input: reading and fitting to the input size. NumPy/PIL stay out of the engine."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from dermx.data.images import load_rgb
from dermx.geometry import InputSpec, Placement, ResolutionPolicy, model_pixels

if TYPE_CHECKING:
    from dermx.compute import Compute

#: What :func:`load_framed` gives for one file: (model input, original image, placement).
Framed = tuple[np.ndarray, Image.Image, Placement]


def load_input(path: Path, size: tuple[int, int], policy: ResolutionPolicy = "squash") -> np.ndarray:
    """``(H, W, 3)`` uint8 model input of an image file: exactly what the model sees (see
    :func:`load_framed`)."""
    return load_framed(path, size, policy)[0]


def load_framed(path: Path, size: tuple[int, int], policy: ResolutionPolicy = "squash"
                ) -> tuple[np.ndarray, Image.Image, Placement]:
    """``(model input, original image, placement)`` of an image file; the model input is exactly what the
    model sees, ``placement`` where the original sits in it.

    The file is read with :func:`dermx.data.images.load_rgb` (any mode, EXIF orientation) and fitted
    to ``size`` = (H, W) by :func:`dermx.geometry.model_pixels` with the resolution ``policy``.
    ``"squash"`` (plain resize) suits timm classifiers; DermX checkpoints record their own.
    """
    image = load_rgb(path)
    pixels = model_pixels(image, size, policy).permute(1, 2, 0).numpy()
    return pixels, image, Placement.of((image.height, image.width), size, policy)


class FramedImages(Dataset[Framed]):
    """Image files framed for a model's ``spec`` (item ``i``: :func:`load_framed` of ``paths[i]``), read in
    batches by :meth:`loader`."""

    def __init__(self, paths: Sequence[Path], spec: InputSpec) -> None:
        self.paths = list(paths)
        self.spec = spec

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Framed:
        return load_framed(self.paths[index], self.spec.size, self.spec.policy)

    def collate(self, items: list[Framed]) -> tuple[torch.Tensor, list[Framed]]:
        """``(normalised batch (B, 3, H, W), the framed items)`` of a batch of items."""
        return self.spec.normalise([pixels for pixels, _, _ in items]), items

    def loader(self, batch_size: int, compute: Compute) -> DataLoader[tuple[torch.Tensor, list[Framed]]]:
        """Consecutive batches of ``batch_size`` files in order, read by ``compute``'s worker processes
        (:meth:`~dermx.compute.Compute.loader`)."""
        return compute.loader(self, batch_size, self.collate)
