"""Paint each of the 16 characteristics onto skin, given its region (the lesion's filled polygon).

Every painter is vectorised over pixels. Colours are either *tints* (multipliers of the local skin
colour, so a red papule reads as red on any skin tone) or absolute RGB (pus, scale, depigmentation).
Raised lesions are shaded from a height field h = Gaussian-blurred region: the pixel is multiplied
by 1 + k·R·(∇h · ℓ), with ℓ the light direction and R the lesion radius (so domes of any size get
the same contrast).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from dermx.data.synth.geometry import Array, Lesion, blur, curve, soften
from dermx.data.synth.skin import smooth_noise, strands


@dataclass
class Canvas:
    """The image being painted, (H, W, 3) float32, and what painters need to know about it."""

    image: Array
    base: Array
    light: Array
    rng: np.random.Generator

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[0], self.image.shape[1]


def _blend(canvas: Canvas, alpha: Array, colour: Array) -> None:
    """image ← (1 − α)·image + α·colour; ``colour`` is (3,) or (H, W, 3)."""
    a = np.clip(alpha, 0, 1)[..., None]
    canvas.image[:] = canvas.image * (1 - a) + a * colour


def _tint(canvas: Canvas, alpha: Array, tint: tuple[float, float, float]) -> None:
    """Blend towards the local colour multiplied by ``tint``."""
    _blend(canvas, alpha, canvas.image * np.asarray(tint, dtype=np.float32))


def _shade(canvas: Canvas, height: Array, strength: float) -> None:
    """Lambert-like relief: image ×= 1 + strength·(∇h · ℓ), clipped to [0.6, 1.4]."""
    gy, gx = np.gradient(height)
    relief = 1 + strength * (gx * canvas.light[0] + gy * canvas.light[1])
    canvas.image *= np.clip(relief, 0.6, 1.4)[..., None]


def _dome(canvas: Canvas, region: Array, radius: float, tint: tuple[float, float, float],
          opacity: float, bump: float) -> Array:
    """A raised lesion: soft-edged tint plus dome shading; returns the height field (peak ≈ 1)."""
    height = blur(region.astype(np.float32), max(0.7, 0.45 * radius))
    height /= max(float(height.max()), 1e-6)
    _tint(canvas, soften(region, max(0.5, 0.2 * radius)) * opacity, tint)
    _shade(canvas, height, bump * radius)
    return height


def _papule(canvas: Canvas, lesion: Lesion, region: Array) -> None:
    if lesion.style == "wart":
        height = _dome(canvas, region, lesion.radius, (0.97, 0.92, 0.86), 0.7, 0.45)
        rough = smooth_noise(canvas.rng, *canvas.size, 1.6) * height * 0.08
        _shade(canvas, rough, 4.0)
        return
    _dome(canvas, region, lesion.radius, (1.02, 0.62, 0.62), 0.85, 0.5)


def _pustule(canvas: Canvas, lesion: Lesion, region: Array) -> None:
    height = _dome(canvas, region, lesion.radius, (1.0, 0.6, 0.6), 0.8, 0.55)
    _blend(canvas, np.clip((height - 0.45) / 0.3, 0, 1) * 0.95, np.array([0.97, 0.94, 0.74]))


def _open_comedo(canvas: Canvas, lesion: Lesion, region: Array) -> None:
    _blend(canvas, soften(region, 0.5) * 0.9, np.array([0.16, 0.12, 0.09]))


def _closed_comedo(canvas: Canvas, lesion: Lesion, region: Array) -> None:
    height = _dome(canvas, region, lesion.radius, (1.05, 1.01, 0.97), 0.5, 0.9)
    _blend(canvas, np.clip((height - 0.7) / 0.3, 0, 1) * 0.35, np.array([0.97, 0.95, 0.9]))


def _nodule(canvas: Canvas, lesion: Lesion, region: Array) -> None:
    height = _dome(canvas, region, lesion.radius, (0.92, 0.56, 0.6), 0.85, 0.6)
    _tint(canvas, np.clip(height - 0.5, 0, 1) * 0.6, (0.85, 0.75, 0.85))


def _cyst(canvas: Canvas, lesion: Lesion, region: Array) -> None:
    height = _dome(canvas, region, lesion.radius, (1.04, 0.94, 0.8), 0.6, 0.7)
    _blend(canvas, np.clip((height - 0.85) / 0.15, 0, 1) * 0.5, np.array([1.0, 0.98, 0.94]))


def _plaque(canvas: Canvas, lesion: Lesion, region: Array) -> None:
    alpha = soften(region, 1.2) * (0.75 + 0.1 * smooth_noise(canvas.rng, *canvas.size, 8))
    _tint(canvas, alpha, (1.0, 0.6, 0.62))
    _shade(canvas, blur(region.astype(np.float32), 1.5), 1.5)


#: Scale colour by style: psoriasis silvery and thick, seborrheic greasy yellow, actinic gritty.
_SCALE: dict[str, tuple[tuple[float, float, float], float]] = {
    "thick": ((0.95, 0.94, 0.92), 0.1),
    "greasy": ((0.93, 0.84, 0.58), 0.35),
    "gritty": ((0.9, 0.86, 0.8), 0.45),
}


def _scale(canvas: Canvas, lesion: Lesion, region: Array) -> None:
    """Flakes where two-octave noise n exceeds a threshold t: coverage clip(3(n − t), 0, 1)."""
    colour, threshold = _SCALE.get(lesion.style, _SCALE["thick"])
    noise = smooth_noise(canvas.rng, *canvas.size, 3.0) + 0.6 * smooth_noise(canvas.rng, *canvas.size, 1.3)
    flakes = np.clip(3 * (noise - threshold), 0, 1) * soften(region, 1.0)
    _blend(canvas, flakes * 0.9, np.asarray(colour))
    _shade(canvas, flakes * 0.5, 1.2)


def _flat(canvas: Canvas, lesion: Lesion, region: Array) -> None:
    """Patches and macules: a flat colour change; vitiligo's is depigmented with a sharp border."""
    if lesion.style == "depigmented":
        _blend(canvas, soften(region, 0.8) * 0.92, np.array([0.97, 0.89, 0.84]))
        return
    tint, edge = {
        "erythematous": ((1.0, 0.74, 0.7), 0.15),
        "hyperpigmented": ((0.74, 0.62, 0.56), 0.1),
    }.get(lesion.style, ((1.0, 0.8, 0.76), 0.12))
    mottle = 0.7 + 0.15 * smooth_noise(canvas.rng, *canvas.size, 10)
    _tint(canvas, soften(region, max(0.8, edge * lesion.radius)) * mottle, tint)


def _scar(canvas: Canvas, lesion: Lesion, region: Array) -> None:
    """Pale, slightly depressed and shiny: a negative dome."""
    _tint(canvas, soften(region, 0.8) * 0.6, (1.06, 0.93, 0.92))
    _shade(canvas, -blur(region.astype(np.float32), max(0.7, 0.4 * lesion.radius)), 0.35 * lesion.radius)


def _sun_damage(canvas: Canvas, lesion: Lesion, region: Array) -> None:
    """Mottled pigmentation: brown lentigines where noise > 0.7, pale spots where noise < −0.9."""
    alpha = soften(region, max(1.0, 0.2 * lesion.radius))
    noise = smooth_noise(canvas.rng, *canvas.size, 4.0)
    _tint(canvas, alpha * np.clip(2 * (noise - 0.7), 0, 0.8), (0.72, 0.6, 0.52))
    _tint(canvas, alpha * np.clip(2 * (-noise - 0.9), 0, 0.6), (1.06, 1.03, 1.02))
    _tint(canvas, alpha * 0.35, (1.0, 0.9, 0.82))


def _inside(canvas: Canvas, region: Array, count: int) -> Array:
    """``count`` random points (x, y) inside ``region`` (empty if the region is empty)."""
    ys, xs = np.nonzero(region)
    if len(xs) == 0:
        return np.zeros((0, 2))
    pick = canvas.rng.integers(0, len(xs), size=count)
    return np.stack([xs[pick], ys[pick]], axis=1) + canvas.rng.uniform(0, 1, (count, 2))


def _lines(canvas: Canvas, lesion: Lesion, region: Array, colour: tuple[float, float, float],
           density: float, length: float) -> None:
    """Thin strands: the lesion's centre line when given, else random curves from inside the region."""
    if lesion.path is not None:
        paths = [lesion.path]
    else:
        count = max(2, round(float(region.sum()) * density))
        paths = [curve(canvas.rng, s, length, points=6, wiggle=0.5) for s in _inside(canvas, region, count)]
    cover = strands(canvas.size, paths) * soften(region, 1.0)
    _blend(canvas, np.clip(cover * 1.3, 0, 0.9), np.asarray(colour))


def _telangiectasia(canvas: Canvas, lesion: Lesion, region: Array) -> None:
    _lines(canvas, lesion, region, (0.78, 0.12, 0.18), 0.01, 8.0)


def _leukotrichia(canvas: Canvas, lesion: Lesion, region: Array) -> None:
    _lines(canvas, lesion, region, (0.97, 0.96, 0.93), 0.012, 14.0)


def _dermatoglyph_disruption(canvas: Canvas, lesion: Lesion, region: Array) -> None:
    """Papillomatous surface that breaks the skin lines: fine bumpy relief over a flattened colour."""
    alpha = soften(region, 0.8)
    _blend(canvas, alpha * 0.55, canvas.base * np.array([0.96, 0.9, 0.84], dtype=np.float32))
    bumps = np.clip(smooth_noise(canvas.rng, *canvas.size, 1.8), -1, 2) * alpha * 0.12
    _shade(canvas, bumps, 4.0)


def _thrombosed_capillaries(canvas: Canvas, lesion: Lesion, region: Array) -> None:
    """Dark red-black dots, one per ~8 px² of the region."""
    dots = np.zeros(canvas.size, dtype=np.float32)
    points = _inside(canvas, region, max(2, round(float(region.sum()) / 8))).astype(int)
    dots[np.clip(points[:, 1], 0, canvas.size[0] - 1), np.clip(points[:, 0], 0, canvas.size[1] - 1)] = 1
    spots = blur(dots, 0.5)
    _blend(canvas, np.clip(spots / max(float(spots.max()), 1e-6) * 1.5, 0, 0.9), np.array([0.3, 0.06, 0.08]))


Painter = Callable[[Canvas, Lesion, Array], None]

#: Painter per characteristic, in drawing order: flat changes, raised lesions, then surface detail.
PAINTERS: dict[str, Painter] = {
    "Sun damage": _sun_damage,
    "Patch": _flat,
    "Macule": _flat,
    "Scar": _scar,
    "Plaque": _plaque,
    "Nodule": _nodule,
    "Cyst": _cyst,
    "Papule": _papule,
    "Closed comedo": _closed_comedo,
    "Pustule": _pustule,
    "Open comedo": _open_comedo,
    "Scale": _scale,
    "Dermatoglyph disruption": _dermatoglyph_disruption,
    "Thrombosed capillaries": _thrombosed_capillaries,
    "Telangiectasia": _telangiectasia,
    "Leukotrichia": _leukotrichia,
}
DRAW_ORDER: dict[str, int] = {name: i for i, name in enumerate(PAINTERS)}


def _window(region: Array, radius: float) -> tuple[slice, slice] | None:
    """The region's bounding box grown by 1.5·R + 6 px (where its blur and shading reach), clipped."""
    ys, xs = np.nonzero(region)
    if len(ys) == 0:
        return None
    margin = int(np.ceil(1.5 * radius + 6))
    height, width = region.shape
    return (slice(max(0, ys.min() - margin), min(height, ys.max() + margin + 1)),
            slice(max(0, xs.min() - margin), min(width, xs.max() + margin + 1)))


def paint(canvas: Canvas, lesions: list[Lesion], regions: list[Array]) -> None:
    """Paint the lesions (regions are their filled polygons, same order) in :data:`DRAW_ORDER`.

    Each painter works on a view of the image around its lesion (see :func:`_window`).
    """
    order = sorted(range(len(lesions)), key=lambda i: DRAW_ORDER[lesions[i].characteristic])
    for i in order:
        lesion, window = lesions[i], _window(regions[i], lesions[i].radius)
        if window is None:
            continue
        if lesion.path is not None:
            lesion = replace(lesion, path=lesion.path - np.array([window[1].start, window[0].start]))
        view = Canvas(canvas.image[window], canvas.base, canvas.light, canvas.rng)
        PAINTERS[lesion.characteristic](view, lesion, regions[i][window])
