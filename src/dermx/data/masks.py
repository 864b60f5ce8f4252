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
    OR of a rater's instances). Each shape is drawn on a canvas the size of its bounding box (shifted
    by a whole number of pixels, which leaves PIL's fill unchanged), so the cost follows the lesion
    area rather than the image area.
    """
    canvas = np.zeros((height, width), dtype=bool)
    for shape in shapes:
        points = np.concatenate([np.asarray(ring, dtype=np.float64).reshape(-1, 2) for ring in shape.rings])
        x0, y0 = (max(int(np.floor(v)) - 1, 0) for v in points.min(axis=0))
        x1, y1 = (int(np.ceil(v)) + 2 for v in points.max(axis=0))
        x1, y1 = min(x1, width), min(y1, height)
        if x1 <= x0 or y1 <= y0:
            continue  # entirely outside the image
        filled = Image.new("1", (x1 - x0, y1 - y0), 0)
        for ring in shape.rings:
            ring_image = Image.new("1", filled.size, 0)
            ImageDraw.Draw(ring_image).polygon([(x - x0, y - y0) for x, y in np.asarray(ring).tolist()], fill=1,
                                               outline=1)
            filled = ImageChops.logical_xor(filled, ring_image)
        canvas[y0:y1, x0:x1] |= np.asarray(filled, dtype=bool)
    return canvas


def mask_pixels(image: Image.Image) -> np.ndarray:
    """The lesion pixels of an opened mask image: (height, width) bool.

    A pixel is inside when its grey value composited on black through its alpha, ``L · A / 255``, is
    above 127 (``L`` = the luminance of a colour mask). A mask without alpha is read by its grey value
    alone; one whose lesion is drawn in the alpha channel only (white everywhere, opaque on the
    lesion) is read through the alpha, never as all-lesion.
    """
    if image.mode not in ("RGBA", "LA", "PA", "La", "RGBa") and "transparency" not in image.info:
        return np.asarray(image.convert("L")) > 127
    rgba = image.convert("RGBA")
    grey = np.asarray(rgba.convert("L"), dtype=np.uint32)
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.uint32)
    return grey * alpha > 127 * 255


def read_mask_png(path: Path, width: int, height: int) -> np.ndarray:
    """Read a released mask (0/255, mode L; alpha read as :func:`mask_pixels` says) as (height, width)
    bool, checking its size; :class:`DermXDBError` naming the file when it is unreadable, of another
    size, or declares more pixels than Pillow's decompression-bomb limit."""
    try:
        with Image.open(path) as image:
            if image.size != (width, height):
                raise DermXDBError(f"{path}: mask is {image.size[0]}x{image.size[1]}, "
                                   f"annotated image is {width}x{height}")
            return mask_pixels(image)
    except (OSError, UnidentifiedImageError, SyntaxError, Image.DecompressionBombError) as error:
        raise DermXDBError(f"{path}: unreadable PNG ({error})") from error


def resize_mask(mask: np.ndarray, size: Size | None) -> np.ndarray:
    """Resize a bool mask to ``size`` = (height, width) by area coverage ≥ 1/2; ``None`` keeps it."""
    if size is None or mask.shape == tuple(size):
        return mask
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(image.resize((size[1], size[0]), Image.Resampling.BOX)) >= 128
