"""Image files → model input: reading and fitting to the input size. NumPy/PIL stay out of the engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from dermx.data.images import load_rgb
from dermx.geometry import Placement, ResolutionPolicy, model_pixels


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
