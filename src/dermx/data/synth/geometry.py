"""Lesion geometry: irregular blobs, thin bands around curves, rasterised and soft masks.

Rings are (N, 2) float arrays of (x, y) pixel coordinates; a lesion's rings combine with the even-odd
rule, like a DermXDB ``complex_polygon`` (a second ring inside the first is a hole).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from dermx.data.masks import rasterise
from dermx.data.records import Shape

Array = np.ndarray


@dataclass(frozen=True)
class Lesion:
    """One drawn instance of a characteristic.

    ``style`` selects an appearance variant (``"depigmented"``, ``"greasy"``...); ``path`` is the
    centre line of line-like lesions (telangiectasia, hairs), drawn instead of random strands.
    """

    characteristic: str
    rings: tuple[Array, ...]
    style: str = ""
    attributes: tuple[str, ...] = ()
    path: Array | None = None

    @property
    def outer(self) -> Array:
        return self.rings[0]

    @property
    def radius(self) -> float:
        """Equivalent radius √(|area| / π) of the outer ring, in pixels."""
        return float(np.sqrt(abs(signed_area(self.outer)) / np.pi))

    def shape(self) -> Shape:
        return Shape(self.characteristic, tuple(np.asarray(r, dtype=np.float64) for r in self.rings))

    def bbox(self) -> tuple[float, float, float, float]:
        """(x, y, w, h) of the outer ring."""
        (x0, y0), (x1, y1) = self.outer.min(axis=0), self.outer.max(axis=0)
        return float(x0), float(y0), float(x1 - x0), float(y1 - y0)


def signed_area(ring: Array) -> float:
    """Shoelace area: ½ Σ (x_i y_{i+1} − x_{i+1} y_i); its sign gives the ring's orientation."""
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def blob(rng: np.random.Generator, centre: Array, radius: float, *, irregularity: float = 0.15,
         elongation: float = 1.0, vertices: int = 32) -> Array:
    """An irregular closed ring: r(θ) = R (1 + Σ_{k=2..5} a_k cos(kθ + φ_k)), a_k ~ N(0, irregularity/k),
    then stretched by ``elongation`` along a random axis. Amplitudes are clipped so r(θ) > 0.3 R.
    """
    theta = np.linspace(0.0, 2 * np.pi, vertices, endpoint=False)
    k = np.arange(2, 6)[:, None]
    amplitude = rng.normal(0.0, irregularity, size=(4, 1)) / k
    phase = rng.uniform(0.0, 2 * np.pi, size=(4, 1))
    r = radius * np.clip(1.0 + (amplitude * np.cos(k * theta + phase)).sum(axis=0), 0.3, None)
    points = np.stack([r * np.cos(theta) * elongation, r * np.sin(theta) / elongation], axis=1)
    angle = rng.uniform(0.0, np.pi)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return points @ rotation.T + centre


def curve(rng: np.random.Generator, start: Array, length: float, *, points: int = 12,
          wiggle: float = 0.4) -> Array:
    """A smooth random curve from ``start``: a walk whose heading turns by N(0, wiggle) per step."""
    heading = rng.uniform(0.0, 2 * np.pi) + np.cumsum(rng.normal(0.0, wiggle, size=points - 1))
    steps = (length / (points - 1)) * np.stack([np.cos(heading), np.sin(heading)], axis=1)
    return np.vstack([start, start + np.cumsum(steps, axis=0)])


def band(path: Array, half_width: float) -> Array:
    """The ring around a curve: the curve offset by ±``half_width`` along its normals, joined."""
    tangent = np.gradient(path, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True) + 1e-9
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1) * half_width
    return np.vstack([path + normal, (path - normal)[::-1]])


def outward_normals(ring: Array) -> Array:
    """Unit outward normals at the vertices of a closed ring (central-difference tangents)."""
    tangent = np.roll(ring, -1, axis=0) - np.roll(ring, 1, axis=0)
    normal = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-9
    return normal * np.sign(signed_area(ring) or 1.0)


def round_rings(rings: tuple[Array, ...]) -> tuple[Array, ...]:
    """Coordinates rounded to 0.01 px, as written to JSON (so masks agree with the files)."""
    return tuple(np.round(r, 2) for r in rings)


def lesion_mask(lesions: list[Lesion], height: int, width: int) -> Array:
    """Union of the lesions' even-odd fills, (height, width) bool, by the DermXDB reader's rasteriser."""
    return rasterise([lesion.shape() for lesion in lesions], width, height)


def soften(mask: Array, sigma: float) -> Array:
    """A bool mask blurred by a Gaussian of ``sigma`` px: float32 in [0, 1]."""
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    if sigma > 0:
        image = image.filter(ImageFilter.GaussianBlur(sigma))
    return np.asarray(image, dtype=np.float32) / 255.0


def _box(field: Array, radius: int) -> Array:
    """Moving average over 2·radius + 1 rows (edges padded), by cumulative sums."""
    padded = np.pad(field, ((radius + 1, radius), (0, 0)), mode="edge")
    total = np.cumsum(padded, axis=0)
    return (total[2 * radius + 1:] - total[: -2 * radius - 1]) / (2 * radius + 1)


def blur(field: Array, sigma: float) -> Array:
    """Approximate Gaussian blur of a float (H, W) field: three box filters per axis of radius r, whose
    variances r(r + 1)/3 add to σ² for r = (√(1 + 4σ²) − 1)/2, rounded (central limit)."""
    radius = max(1, round((float(np.sqrt(1.0 + 4.0 * sigma**2)) - 1.0) / 2.0))
    out = field.astype(np.float32)
    for _ in range(2):
        for _ in range(3):
            out = _box(out, radius)
        out = out.T
    return np.ascontiguousarray(out)
