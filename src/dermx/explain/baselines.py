"""Reference maps that know nothing about the image, so every localisation score can be read
against chance. All return ``(B, T, h, w)`` maps in [0, 1], like the CAM engine's output.

- uniform: m(x) = 1 everywhere;
- centred Gaussian: m(x) = exp(−‖x − c‖² / (2σ²)) with positions in units of the image side
  (pixel centres, c = (½, ½)), σ a fraction of the side, min-max normalised;
- random: i.i.d. U(0, 1) noise drawn on a ``grid`` (the pixel grid by default; a CAM-like coarse grid
  such as 7×7 gives smooth blobs), bilinearly upsampled and min-max normalised; reproducible per
  ``seed``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from dermx.explain.maps import minmax, resize

Baseline = Literal["uniform", "gaussian", "random"]


def uniform_maps(batch: int, n_targets: int, size: tuple[int, int], device: torch.device | str = "cpu") -> Tensor:
    """Constant maps of ones."""
    return torch.ones(batch, n_targets, *size, device=device)


def gaussian_maps(
    batch: int, n_targets: int, size: tuple[int, int], sigma: float = 0.25, device: torch.device | str = "cpu"
) -> Tensor:
    """A centred isotropic Gaussian; ``sigma`` in units of each image side."""
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    h, w = size
    ys = (torch.arange(h, device=device) + 0.5) / h - 0.5
    xs = (torch.arange(w, device=device) + 0.5) / w - 0.5
    blob = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma**2))
    return minmax(blob, eps=1e-7).expand(batch, n_targets, h, w).clone()


def random_maps(
    batch: int,
    n_targets: int,
    size: tuple[int, int],
    seed: int = 0,
    grid: tuple[int, int] | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Seeded uniform noise on ``grid`` (default: the pixel grid), bilinearly upsampled to ``size``."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(batch, n_targets, *(grid or size), generator=generator)
    return minmax(resize(noise, size, "bilinear"), eps=1e-7).to(device)


def baseline_like(kind: Baseline, maps: Tensor, seed: int = 0) -> Tensor:
    """A baseline of the same shape and device as ``maps`` (e.g. ``result.maps``)."""
    batch, n_targets, h, w = maps.shape
    if kind == "uniform":
        return uniform_maps(batch, n_targets, (h, w), maps.device)
    if kind == "gaussian":
        return gaussian_maps(batch, n_targets, (h, w), device=maps.device)
    if kind == "random":
        return random_maps(batch, n_targets, (h, w), seed=seed, device=maps.device)
    raise ValueError(f"unknown baseline {kind!r}; baselines: uniform, gaussian, random")
