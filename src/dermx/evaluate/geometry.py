"""From the model's input grid back to the native image grid.

The training pipeline (:mod:`dermx.train.datasets`) resizes an image of native size (H, W) to a
scaled size (h', w') (policy ``pad``, ``crop`` or ``squash``) and centre-pads / centre-crops it to the
input size (h, w) with torchvision's rule: padding ``⌊(h − h')/2⌋`` before, crop offset
``round((h' − h)/2)``. Input row i therefore shows scaled row ``i + o`` with ``o = round((h' − h)/2)``
when h' ≥ h and ``o = −⌊(h − h')/2⌋`` otherwise (columns alike). :func:`to_native` places the input
maps on the scaled grid (0 where the model saw no image, e.g. cropped margins), drops the padding and
resizes bilinearly to (H, W).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from dermx.train.config import ResolutionPolicy
from dermx.train.datasets import scaled_size


def _offset(scaled: int, crop: int) -> int:
    return round((scaled - crop) / 2) if scaled >= crop else -((crop - scaled) // 2)


def to_native(maps: Tensor, native: tuple[int, int], input_size: tuple[int, int],
              policy: ResolutionPolicy) -> Tensor:
    """Maps ``(..., h, w)`` on the input grid → ``(..., H, W)`` on the native grid (module docstring)."""
    scaled = scaled_size(native[0], native[1], input_size, policy)
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:])
    canvas = flat.new_zeros(flat.shape[0], 1, *scaled)
    spans = []
    for axis in range(2):
        o = _offset(scaled[axis], input_size[axis])
        start, stop = max(0, o), min(scaled[axis], o + input_size[axis])
        spans.append((slice(start, stop), slice(start - o, stop - o)))
    (rows_s, rows_i), (cols_s, cols_i) = spans
    canvas[..., rows_s, cols_s] = flat[..., rows_i, cols_i]
    out = F.interpolate(canvas, size=native, mode="bilinear", align_corners=False) if scaled != native else canvas
    return out.clamp(0, 1).reshape(*lead, *native)
