"""Post-processing of raw maps ``(B, T, h, w)``: ReLU, resizing, min-max normalisation, absent targets.

Order: ReLU at the feature grid → (if normalising) min-max at the grid → resize → min-max again.
Normalising before resizing makes ε act on a unit-range map, so the result does not depend on the
scale of the raw map; the second pass restores an exact [0, 1] range after interpolation. This is
also pytorch-grad-cam's convention, so maps agree with it to float precision. Bilinear resizing uses
half-pixel centres (``align_corners=False``), the same sampling as OpenCV's ``INTER_LINEAR``.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor

#: Output resolution: the feature grid, the model input, or an explicit ``(h, w)``.
MapSize = Literal["features", "input"] | tuple[int, int]
Interpolation = Literal["bilinear", "nearest", "bicubic"]


def minmax(maps: Tensor, eps: float) -> Tensor:
    """Per-map (m − min m) / (max m − min m + ε) over the last two dimensions."""
    low = maps.amin(dim=(-2, -1), keepdim=True)
    shifted = maps - low
    return shifted / (shifted.amax(dim=(-2, -1), keepdim=True) + eps)


def resize(maps: Tensor, size: tuple[int, int], interpolation: Interpolation) -> Tensor:
    """Resize ``(B, T, h, w)`` maps to ``size``; a no-op when the size already matches."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    corners = {"align_corners": False} if interpolation != "nearest" else {}
    return F.interpolate(maps, size=size, mode=interpolation, **corners)


def finalize(
    raw: Tensor,
    size: tuple[int, int],
    *,
    relu: bool,
    normalize: bool,
    eps: float,
    interpolation: Interpolation,
) -> Tensor:
    """Raw maps → final maps, following the order in the module docstring."""
    maps = raw.clamp(min=0) if relu else raw
    if normalize:
        maps = minmax(maps, eps)
    resized = resize(maps, size, interpolation)
    if normalize and resized is not maps:
        resized = minmax(resized, eps)
    return resized


def zero_absent(maps: Tensor, logits: Tensor, applies: Tensor) -> Tensor:
    """DermX convention: zero the map of a target predicted absent, sigmoid(y) < 0.5 ⇔ y < 0.

    ``logits`` are the targets' logits ``(B, T)``; ``applies`` ``(T,)`` marks the targets of
    multi-label heads, the only ones for which absence is meaningful (others are never zeroed).
    """
    keep = (logits >= 0) | ~applies
    return maps * keep.to(maps.dtype)[..., None, None]


def output_size(size: MapSize, grid: tuple[int, int], image: tuple[int, int]) -> tuple[int, int]:
    """The ``(h, w)`` that ``size`` stands for, given the feature grid and the input image size."""
    if size == "features":
        return grid
    if size == "input":
        return image
    if (isinstance(size, tuple | list) and len(size) == 2
            and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)):
        return int(size[0]), int(size[1])
    raise ValueError(f"size must be 'features', 'input' or a (height, width) pair of positive ints, got {size!r}")
