"""Image files → model input: listing a folder, resizing, normalising. NumPy/PIL stay out of the engine."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; ValueError if there are none."""
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return paths


def load_rgb(path: Path, size: tuple[int, int]) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB image resized (bilinear) to ``size = (H, W)``: exactly the model's input."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((size[1], size[0]), Image.Resampling.BILINEAR))


def to_batch(images: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """``(B, 3, H, W)`` float tensor: (x / 255 − mean) / std per channel."""
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    return (batch - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
