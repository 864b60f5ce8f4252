"""Overlay a map on its image with a matplotlib colormap: out = (1 − a·m) · image + a·m · colour(m)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.5, colormap: str = "jet") -> np.ndarray:
    """Blend ``cam`` (h, w) in [0, 1] over ``image`` (h, w, 3) uint8, weighting by the map itself."""
    if image.shape[:2] != cam.shape:
        raise ValueError(f"map {cam.shape} and image {image.shape[:2]} differ in size")
    from matplotlib import colormaps

    values = np.clip(cam, 0.0, 1.0)
    colours = colormaps[colormap](values)[..., :3]
    weight = alpha * values[..., None]
    blended = (1 - weight) * (image / 255.0) + weight * colours
    return np.round(blended * 255).astype(np.uint8)


def save_overlay(path: Path, image: np.ndarray, cam: np.ndarray, alpha: float = 0.5, colormap: str = "jet") -> None:
    """Write :func:`overlay` as a PNG."""
    Image.fromarray(overlay(image, cam, alpha, colormap)).save(path)
