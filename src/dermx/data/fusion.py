"""Fuse several raters' binary masks into one fuzzy expert map.

For raters r = 1..R with masks m_r and count(x) = Σ_r m_r(x):

- ``mean``: count(x) / R (soft consensus, the default);
- ``relative``: count(x) / max_x count(x) (the DermX papers' rule; 0 where no rater drew anything);
- ``any``: count(x) ≥ 1; ``majority``: count(x) > R / 2; ``all``: count(x) = R.
"""

from __future__ import annotations

from typing import get_args

import numpy as np
import torch

from dermx.choices import FusionRule

FUSION_RULES: tuple[str, ...] = get_args(FusionRule)


def rater_count(stack: torch.Tensor, rater_dim: int = -3) -> torch.Tensor:
    """count(x) = Σ_r m_r(x) as float32.

    On CPU the reduction runs in NumPy: a single-threaded byte sum is several times faster than
    torch's threaded reduction over a bool tensor, and does not stall when other processes hold the
    cores (measured: 37 ms vs 1.3 ms per 16 x 8 x 224 x 224 stack on a loaded 2-core machine).
    """
    if stack.device.type == "cpu" and stack.dtype == torch.bool and not stack.requires_grad:
        total = stack.numpy().sum(axis=rater_dim, dtype=np.uint16).astype(np.float32)
        return torch.from_numpy(total)
    return stack.sum(dim=rater_dim, dtype=torch.int16).to(torch.float32)


def fuse(stack: torch.Tensor, rule: FusionRule = "mean", *, rater_dim: int = -3) -> torch.Tensor:
    """Fuse a rater stack ``(..., R, H, W)`` (bool or {0, 1}) into ``(..., H, W)`` float32 in [0, 1].

    ``rater_dim`` selects the rater axis. With R = 0 raters every rule gives an all-zero map.
    """
    if rule not in FUSION_RULES:
        raise ValueError(f"unknown fusion rule {rule!r}; expected one of {FUSION_RULES}")
    if stack.dim() < 3:
        raise ValueError(f"rater stack must have at least 3 dims (..., R, H, W), got {tuple(stack.shape)}")
    raters = stack.shape[rater_dim]
    count = rater_count(stack, rater_dim)
    if raters == 0:
        return count
    if rule == "mean":
        return count / raters
    if rule == "relative":
        peak = count.amax(dim=(-2, -1), keepdim=True)
        return torch.where(peak > 0, count / peak.clamp_min(1), torch.zeros_like(count))
    threshold = {"any": 1.0, "majority": raters / 2 + 1e-6, "all": float(raters)}[rule]
    return (count >= threshold).to(torch.float32)


def union(maps: torch.Tensor, *, dim: int = -3) -> torch.Tensor:
    """Fuzzy union (Zadeh OR = max) over a dimension, e.g. over characteristics of fused maps."""
    if maps.shape[dim] == 0:
        shape = list(maps.shape)
        del shape[dim]
        return maps.new_zeros(shape)
    return maps.amax(dim=dim)
