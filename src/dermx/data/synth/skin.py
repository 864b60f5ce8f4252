"""Background skin: tone, lighting gradient, mottling, skin lines, pores, hair and sensor noise.

Images are float32 (H, W, 3) RGB in [0, 1] until written.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from dermx.data.synth.geometry import Array, blur, curve

#: Mean RGB of each skin tone (the tones of DermXDB's metadata), before per-image variation.
SKIN_TONES: dict[str, tuple[float, float, float]] = {
    "light": (0.91, 0.74, 0.64),
    "medium": (0.74, 0.54, 0.40),
    "dark": (0.42, 0.28, 0.20),
}
#: P(tone) for a synthetic patient (DermXDB: 65 % light, 32 % medium, 3 % dark; dark raised here).
TONE_PROBABILITIES: dict[str, float] = {"light": 0.55, "medium": 0.33, "dark": 0.12}


def smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> Array:
    """Zero-mean, unit-scale value noise of feature size ``cell`` px: a random grid, bicubic-upsampled."""
    grid = rng.standard_normal((max(2, round(height / cell) + 2), max(2, round(width / cell) + 2)))
    image = Image.fromarray(grid.astype(np.float32), mode="F")
    return np.asarray(image.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)


def strands(size: tuple[int, int], paths: list[Array], width: int = 1, supersample: int = 3) -> Array:
    """Anti-aliased coverage (H, W) float32 of polylines, drawn at ``supersample``× and averaged down."""
    height, width_px = size
    big = Image.new("L", (width_px * supersample, height * supersample), 0)
    draw = ImageDraw.Draw(big)
    for path in paths:
        draw.line([tuple(p) for p in (path * supersample + supersample / 2)], fill=255,
                  width=width * supersample)
    return np.asarray(big.resize((width_px, height), Image.Resampling.BOX), dtype=np.float32) / 255.0


def hairs(rng: np.random.Generator, size: tuple[int, int], count: int, length: float) -> list[Array]:
    """``count`` gently curved hairs of about ``length`` px starting anywhere in the image."""
    height, width = size
    starts = rng.uniform((0, 0), (width, height), size=(count, 2))
    return [curve(rng, s, length * rng.uniform(0.6, 1.2), wiggle=0.12) for s in starts]


def render_skin(rng: np.random.Generator, size: tuple[int, int], tone: str, *, hair: bool) -> Array:
    """A patch of skin of ``tone``.

    colour(x) = base · (1 + 0.06·mottle(x)) · light(x) + lines + pores, with light(x) a linear gradient
    of ±12 % in a random direction times a vignette 1 − 0.15·r², r the normalised distance to the
    centre; skin lines are faint ridges |sin| along a warped random direction.
    """
    height, width = size
    base = np.array(SKIN_TONES[tone]) * rng.uniform(0.92, 1.06) + rng.normal(0, 0.015, 3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = (xx / width - 0.5) * 2, (yy / height - 0.5) * 2
    angle = rng.uniform(0, 2 * np.pi)
    light = (1 + 0.12 * rng.uniform(0.3, 1) * (np.cos(angle) * u + np.sin(angle) * v)) \
        * (1 - 0.15 * (u**2 + v**2) / 2)
    mottle = smooth_noise(rng, height, width, 24) + 0.5 * smooth_noise(rng, height, width, 6)
    skin = base[None, None, :] * (1 + 0.06 * mottle)[..., None]
    redness = np.clip(smooth_noise(rng, height, width, 40), 0, None) * 0.03
    skin[..., 0] += redness
    direction = rng.uniform(0, np.pi)
    warp = 6 * smooth_noise(rng, height, width, 50)
    phase = (np.cos(direction) * xx + np.sin(direction) * yy + warp) * (2 * np.pi / rng.uniform(4, 7))
    ridges = np.abs(np.sin(phase)) ** 8 * 0.035
    pores = np.clip(blur(rng.standard_normal((height, width)).astype(np.float32), 0.6) - 0.5, 0, None)
    skin = skin * (1 - ridges - 0.25 * pores)[..., None] * light[..., None]
    if hair:
        count = int(rng.integers(3, 25))
        darkness = np.array([0.12, 0.08, 0.06]) if tone != "light" else np.array([0.35, 0.25, 0.18])
        cover = strands(size, hairs(rng, size, count, 0.4 * min(size)))
        skin = skin * (1 - 0.8 * cover[..., None]) + 0.8 * cover[..., None] * darkness
    return skin.astype(np.float32)


def finish(image: Array, rng: np.random.Generator) -> Array:
    """Sensor noise N(0, 0.012) per pixel and channel, then clip to [0, 1]."""
    return np.clip(image + rng.normal(0, 0.012, image.shape).astype(np.float32), 0, 1)
