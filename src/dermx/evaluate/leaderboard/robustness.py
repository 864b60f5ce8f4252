r"""Robustness of saliency maps to small input noise: max- and average-sensitivity (Yeh et al. 2019).

For an input x, the map Φ_t(x) of target t and n perturbations δ_j drawn uniformly from the L∞ ball
of radius r (each input element independently in [−r, r], in the model's normalised input space):

    SENS_max = max_j ‖Φ_t(x + δ_j) − Φ_t(x)‖_F / ‖Φ_t(x)‖_F
    SENS_avg = (1/n) Σ_j ‖Φ_t(x + δ_j) − Φ_t(x)‖_F / ‖Φ_t(x)‖_F

Lower is better. Undefined (NaN) where ‖Φ_t(x)‖_F = 0. This is Quantus' ``MaxSensitivity`` /
``AvgSensitivity`` with its defaults (``difference``, ``fro_norm`` over the flattened map, no
normalisation, NaN-aware max), evaluated for every target of a batch from one explanation call per
noise draw: the CAM engine gives all targets from one pass, where Quantus explains one target per call.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Sensitivity", "map_sensitivity"]


@dataclass(frozen=True)
class Sensitivity:
    """Max- and average-sensitivity ``(B, T)``."""

    max: Tensor
    avg: Tensor


def map_sensitivity(explain: Callable[[Tensor], Tensor], images: Tensor, *, n_samples: int = 10,
                    radius: float = 0.02, seed: int = 0, maps: Tensor | None = None,
                    noise: Tensor | None = None) -> Sensitivity:
    """Sensitivities of ``explain(images (B, C, H, W)) -> maps (B, T, h, w)`` (module docstring).

    ``maps``: Φ(x) if already computed; ``noise``: ``(n_samples, B, C, H, W)`` draws δ_j to use instead
    of drawing them from ``seed``.
    """
    if n_samples < 1 and noise is None:
        raise ValueError(f"n_samples must be positive, got {n_samples}")
    reference = (explain(images) if maps is None else maps).double()
    norm = reference.flatten(2).norm(dim=-1)
    generator = torch.Generator().manual_seed(seed)
    draws = range(len(noise)) if noise is not None else range(n_samples)
    ratios = []
    for j in draws:
        delta = noise[j] if noise is not None else (torch.rand(images.shape, generator=generator) * 2 - 1) * radius
        perturbed = explain(images + delta.to(images)).double()
        ratios.append((perturbed - reference).flatten(2).norm(dim=-1))
    stacked = torch.stack(ratios, dim=-1)
    defined = (norm > 0)[..., None]
    ratio = torch.where(defined, stacked / norm.clamp(min=1e-300)[..., None], torch.full_like(stacked, math.nan))
    return Sensitivity(max=ratio.amax(dim=-1).float(), avg=ratio.mean(dim=-1).float())
