"""Images in for prediction: opening a file, an upload's bytes or an opened image, and maps out as arrays.

Geometry (resolution policy, placement in the model input and back) is :mod:`dermx.geometry`'s.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dermx.data.images import load_rgb, to_rgb

#: What :func:`open_image` accepts: an opened image, a file path, or the bytes of an image file.
ImageSource = Image.Image | str | os.PathLike[str] | bytes


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


def as_array(maps: torch.Tensor) -> np.ndarray:
    """A map tensor as a float32 NumPy array."""
    return maps.detach().cpu().float().numpy()
