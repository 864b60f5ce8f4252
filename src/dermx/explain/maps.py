"""Post-processing of raw maps ``(B, T, h, w)``: ReLU, resizing, min-max normalisation, absent targets.

Order: ReLU at the feature grid → (if normalising) min-max at the grid → resize → min-max again.
The second pass restores an exact [0, 1] range after interpolation. This is also pytorch-grad-cam's
order, so maps agree with it to float precision. Min-max normalisation is scale-free (its ε is
relative, see :func:`minmax`): a map and the same map times 10⁻⁶ normalise alike, at any size.
Bilinear resizing uses half-pixel centres (``align_corners=False``), the same sampling as OpenCV's
``INTER_LINEAR``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from dermx.geometry import Interpolation, resize

#: Output resolution: the feature grid, the model input, or an explicit ``(h, w)``.
MapSize = Literal["features", "input"] | tuple[int, int]


def minmax(maps: Tensor, eps: float) -> Tensor:
    """Per-map min-max normalisation over the last two dimensions, with a relative ε:

    minmax(m) = (m − min m) / max(r, ε·M),  r = max m − min m,  M = max |m|;  0 where r = M = 0.

    The result is invariant to the map's scale (minmax(c·m) = minmax(m) for c > 0), so a map whose
    values span 1e-6 still peaks at exactly 1 (an absolute ε would shrink it to r / (r + ε)). A map
    that varies by less than ε of its own magnitude (rounding noise on a constant) is not blown up
    to full range, and a constant map, zero or not, normalises to all zeros, never NaN.
    """
    low = maps.amin(dim=(-2, -1), keepdim=True)
    shifted = maps - low
    span = torch.maximum(shifted.amax(dim=(-2, -1), keepdim=True), eps * maps.abs().amax(dim=(-2, -1), keepdim=True))
    return shifted / torch.where(span > 0, span, torch.ones_like(span))


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
