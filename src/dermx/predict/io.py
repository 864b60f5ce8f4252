"""Images in, model inputs out, and back: opening, the checkpoint's own preprocessing, geometry.

Preprocessing is the training code's evaluation transform (:mod:`dermx.train.datasets`): resize by
the resolution policy (``pad`` keeps the aspect ratio and pads), then its ``joint_transform`` without
augmentation. A coordinate grid rides through the same transform as a mask, so :class:`Placement`
records exactly where each model-input pixel came from, whatever the policy; :meth:`Placement.restore`
uses it to bring a map computed on the model input back to the original image geometry.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from dermx.data.images import load_rgb, to_rgb
from dermx.explain.maps import resize
from dermx.train.config import ResolutionPolicy
from dermx.train.datasets import scaled_size

#: What :func:`open_image` accepts: an opened image, a file path, or the bytes of an image file.
ImageSource = Image.Image | str | os.PathLike[str] | bytes

Box = tuple[int, int, int, int]


class NamedBytes(io.BytesIO):
    """Image file bytes that print as their file name, so ``load_rgb`` and Pillow errors name the upload
    (Pillow's "cannot identify image file" shows the ``repr`` of the file object)."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self.name = name

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return repr(self.name)


def open_image(source: ImageSource, name: str | None = None, *,
               min_side: int | None = None) -> tuple[Image.Image, str]:
    """``(RGB image, name)``; raises ``DermXDBError`` naming the file when it cannot be read.

    ``min_side``: decode files and bytes at a reduced scale whose shorter side stays ≥ ``min_side``
    (see :func:`dermx.data.images.decode_reduced`); an opened image is used as it is.
    """
    if isinstance(source, Image.Image):
        return to_rgb(source), name or getattr(source, "filename", "") or "<image>"
    if isinstance(source, bytes):
        label = name or "<upload>"
        return load_rgb(NamedBytes(source, label), min_side=min_side), label  # type: ignore[arg-type]
    path = Path(source)
    return load_rgb(path, min_side=min_side), name or str(path)


@dataclass(frozen=True)
class Placement:
    """Where the original image sits in the model input.

    ``original`` and ``resized`` are ``(h, w)`` before and after resizing; ``inside`` is the
    ``(top, left, h, w)`` box of the model input showing image pixels, and ``visible`` the same-sized
    box of the resized image it shows (smaller than the resized image only when cropping).
    """

    original: tuple[int, int]
    resized: tuple[int, int]
    inside: Box
    visible: Box

    def restore(self, maps: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Maps ``(..., H, W)`` on the model input → ``(..., h, w)`` on the original image (or at
        ``size``); image regions the model never saw (cropped away) are 0."""
        top, left, height, width = self.inside
        v_top, v_left, _, _ = self.visible
        lead = maps.shape[:-2]
        flat = maps.reshape(-1, 1, *maps.shape[-2:]).float()
        canvas = flat.new_zeros((flat.shape[0], 1, *self.resized))
        canvas[..., v_top:v_top + height, v_left:v_left + width] = flat[..., top:top + height, left:left + width]
        out = resize(canvas, size or self.original, "bilinear").clamp(0, 1)
        return out.reshape(*lead, *out.shape[-2:])


def _box(rows: torch.Tensor, cols: torch.Tensor) -> tuple[Box, Box]:
    """Boxes from the coordinate planes (1-based source row / column, 0 where padded)."""
    seen = rows > 0
    where_rows = torch.nonzero(seen.any(dim=1)).flatten()
    where_cols = torch.nonzero(seen.any(dim=0)).flatten()
    top, left = int(where_rows[0]), int(where_cols[0])
    height, width = len(where_rows), len(where_cols)
    return (top, left, height, width), (int(rows[top, left]) - 1, int(cols[top, left]) - 1, height, width)


def preprocess(image: Image.Image, size: tuple[int, int], transform: v2.Transform,
               policy: ResolutionPolicy = "pad") -> tuple[torch.Tensor, Placement]:
    """The model input ``(3, H, W)`` of an RGB ``image`` and its :class:`Placement`.

    ``transform`` is the training code's evaluation transform
    (``joint_transform(size, mean, std, augment=False)``).
    """
    height, width = scaled_size(image.height, image.width, size, policy)
    resized = image.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=None)
    rows = torch.arange(1, height + 1, dtype=torch.int32)[:, None].expand(height, width)
    cols = torch.arange(1, width + 1, dtype=torch.int32)[None, :].expand(height, width)
    sample = transform({"image": tv_tensors.Image(TF.pil_to_tensor(resized)),
                        "coords": tv_tensors.Mask(torch.stack([rows, cols]))})
    inside, visible = _box(*sample["coords"].as_subclass(torch.Tensor))
    placement = Placement((image.height, image.width), (height, width), inside, visible)
    return sample["image"].as_subclass(torch.Tensor), placement


def display_size(original: tuple[int, int], longest: int) -> tuple[int, int]:
    """``(h, w)`` of ``original`` scaled down (never up) so its longest side is at most ``longest``."""
    scale = min(1.0, longest / max(original))
    return max(1, round(original[0] * scale)), max(1, round(original[1] * scale))


def as_array(maps: torch.Tensor) -> np.ndarray:
    """A map tensor as a float32 NumPy array."""
    return maps.detach().cpu().float().numpy()
