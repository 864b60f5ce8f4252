"""Binary characteristic masks: rasterised from polygons or read from the released PNGs.

Sizes are ``(height, width)`` everywhere. A mask at a requested size other than the native one is
computed by area averaging at native resolution (PIL ``BOX``) and thresholding the covered fraction at
one half, so a pixel is inside when at least half of its area is.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, UnidentifiedImageError

from dermx.data.records import DermXDBError, Shape

Size = tuple[int, int]


def rasterise(shapes: Sequence[Shape], width: int, height: int) -> np.ndarray:
    """Fill the shapes of one (rater, characteristic) at native size: (height, width) bool.

    Each shape's rings combine with the even-odd rule (a hole is a ring inside a ring: pixel inside
    iff it lies in an odd number of rings); several shapes combine by union (the released PNG is the
    OR of a rater's instances).
    """
    canvas = Image.new("1", (width, height), 0)
    for shape in shapes:
        filled = Image.new("1", (width, height), 0)
        for ring in shape.rings:
            ring_image = Image.new("1", (width, height), 0)
            ImageDraw.Draw(ring_image).polygon(list(ring), fill=1, outline=1)
            filled = ImageChops.logical_xor(filled, ring_image)
        canvas = ImageChops.logical_or(canvas, filled)
    return np.asarray(canvas, dtype=bool)


def read_mask_png(path: Path, width: int, height: int) -> np.ndarray:
    """Read a released mask (0/255, mode L) as (height, width) bool, checking its size."""
    try:
        with Image.open(path) as image:
            if image.size != (width, height):
                raise DermXDBError(f"{path}: mask is {image.size[0]}x{image.size[1]}, "
                                   f"annotated image is {width}x{height}")
            return np.asarray(image.convert("L")) > 127
    except (OSError, UnidentifiedImageError, SyntaxError) as error:
        raise DermXDBError(f"{path}: unreadable PNG ({error})") from error


def resize_mask(mask: np.ndarray, size: Size | None) -> np.ndarray:
    """Resize a bool mask to ``size`` = (height, width) by area coverage ≥ 1/2; ``None`` keeps it."""
    if size is None or mask.shape == tuple(size):
        return mask
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(image.resize((size[1], size[0]), Image.Resampling.BOX)) >= 128
