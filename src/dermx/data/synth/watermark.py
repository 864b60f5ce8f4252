"""The shortcut: a semi-transparent watermark box with text, stamped in a corner of an image.

A watermark covers about 30 % × 12 % of the image in a random corner, inset by 2–6 % of the size;
its box (x0, y0, x1, y1), end-exclusive pixel bounds, is recorded in ``synth.json``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Box = tuple[int, int, int, int]


def watermark_box(rng: np.random.Generator, size: tuple[int, int]) -> Box:
    """Where the watermark goes: a random corner of an image of ``size`` = (height, width)."""
    height, width = size
    w, h = round(width * rng.uniform(0.26, 0.34)), round(height * rng.uniform(0.1, 0.14))
    inset_x, inset_y = round(width * rng.uniform(0.02, 0.06)), round(height * rng.uniform(0.02, 0.06))
    x0 = inset_x if rng.random() < 0.5 else width - inset_x - w
    y0 = inset_y if rng.random() < 0.5 else height - inset_y - h
    return x0, y0, x0 + w, y0 + h


def stamp(image: Image.Image, box: Box) -> Image.Image:
    """The image with a watermark in ``box``: a white box at 45 % opacity with grey text."""
    x0, y0, x1, y1 = box
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=(255, 255, 255, 115), outline=(90, 90, 90, 150))
    font = ImageFont.load_default(size=max(6, round(0.62 * (y1 - y0))))
    draw.text(((x0 + x1) / 2, (y0 + y1) / 2), "DermSynth", fill=(60, 60, 60, 170), font=font, anchor="mm")
    return Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")


def box_mask(box: Box | None, size: tuple[int, int]) -> np.ndarray:
    """(height, width) bool mask of a watermark box; all False for ``None``."""
    mask = np.zeros(size, dtype=bool)
    if box is not None:
        x0, y0, x1, y1 = box
        mask[max(0, y0):y1, max(0, x0):x1] = True
    return mask
