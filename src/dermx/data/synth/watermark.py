"""The shortcut: an opaque corner logo, as atlas images (DermNet NZ) carry, stamped on an image.

A watermark is a dark-blue box with white text covering about 28 % × 20 % of the image (± 2 % each),
always in the bottom-right corner, inset by 1–3 % of the size: a fixed, high-contrast, colour-unique
cue that a CNN picks up more easily than the lesions. Its box (x0, y0, x1, y1), end-exclusive pixel
bounds, is recorded in ``synth.json``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: A watermark's pixel bounds (x0, y0, x1, y1), end-exclusive.
Bounds = tuple[int, int, int, int]


def watermark_box(rng: np.random.Generator, size: tuple[int, int]) -> Bounds:
    """Where the watermark goes: the bottom-right corner of an image of ``size`` = (height, width)."""
    height, width = size
    w, h = round(width * rng.uniform(0.26, 0.3)), round(height * rng.uniform(0.18, 0.22))
    inset_x, inset_y = round(width * rng.uniform(0.01, 0.03)), round(height * rng.uniform(0.01, 0.03))
    x0, y0 = width - inset_x - w, height - inset_y - h
    return x0, y0, x0 + w, y0 + h


def stamp(image: Image.Image, box: Bounds) -> Image.Image:
    """The image with a watermark in ``box``: a dark-blue box at 90 % opacity with white text."""
    x0, y0, x1, y1 = box
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=(25, 55, 150, 230), outline=(255, 255, 255, 230))
    font = ImageFont.load_default(size=max(6, round(min(0.45 * (y1 - y0), 0.17 * (x1 - x0)))))
    draw.text(((x0 + x1) / 2, (y0 + y1) / 2), "DermSynth", fill=(255, 255, 255, 240), font=font, anchor="mm")
    return Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")


def box_mask(box: Bounds | None, size: tuple[int, int]) -> np.ndarray:
    """(height, width) bool mask of a watermark box; all False for ``None``."""
    mask = np.zeros(size, dtype=bool)
    if box is not None:
        x0, y0, x1, y1 = box
        mask[max(0, y0):y1, max(0, x0):x1] = True
    return mask
