"""Training losses of DermX and DermX+.

Total loss = CE(diagnosis; class weights) + BCE(characteristics) + λ · GA, with GA the guided-attention
loss of DermX+ (λ = 10 by default for ``dermx+``, 0 otherwise).

Guided attention, for a predicted map p and a fuzzy reference map y in [0, 1] of one (image,
characteristic), on the product t-norm::

    TP = Σ p·y      TN = Σ (1 − p)(1 − y)      P = Σ y      N = Σ (1 − y)
    GA = 1 − [α (TP + s) / (P + s) + (1 − α)(TN + s) / (N + s)]        α = 0.5, s = 1

averaged over the (image, characteristic) pairs whose characteristic is present. The maps p are
Grad-CAMs of the characteristic logits at the CAM layer (activations A, K × h × w)::

    α_ck = mean_ij ∂z_c/∂A_kij        p_c = minmax(ReLU(Σ_k α_ck A_k))

computed by :mod:`dermx.explain` for all characteristics in ONE backward pass with batched one-hot
cotangents and ``create_graph=True``, so that the GA gradient flows through the maps into the backbone
(see :class:`dermx.train.DermXModule`).

Where the loss is taken (``TrainConfig.ga_resolution``): at the CAM grid (``features``, the default)
the reference maps y, fused at the input size, are brought down to the grid h × w by area averaging
(:func:`maps_at_grid`): each cell's target is the mean expert value over the pixels it covers, so a
lesion smaller than a cell still counts in proportion to its area (nearest sampling would keep or
drop it whole). The map p is then the engine's, at the grid. At the input size (``input``, the
original DermX+) p is upsampled bilinearly to y's size instead; on a coarse grid that asks h·w
numbers to draw a full-resolution outline. The default target is the ``mean`` fusion (fraction of
raters who outlined a pixel), the fuzzy gold standard the benchmark scores against, so training and
evaluation share one reference; ``relative`` (count / max count, the papers') sets every image's
most-agreed pixel to 1 whatever the agreement.

The smoothing s = 1 counts the units the sums run over: grid cells at the grid. It is then large next
to a lesion covering a fraction of one cell (P ≪ s), whose term (TP + s)/(P + s) stays near 1 whatever
the map does there, and the loss is driven by the lesions of a cell or more and by the background.
Measured in the demo recipe (600 images, 8 × 8 grid): s counted in input pixels instead (s / 64 per
cell, so that the grid loss equals the input-size loss of the map repeated over each cell) lowered
DermX+'s characteristic-map Dice from 0.276 to 0.228 and its pointing game from 0.35 to 0.29.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dermx import vocab


def guided_attention_loss(maps: torch.Tensor, targets: torch.Tensor, present: torch.Tensor, *,
                          alpha: float = 0.5, smooth: float = 1.0) -> torch.Tensor:
    """The DermX+ guided-attention loss (see the module docstring).

    ``maps`` (B, T, h, w) in [0, 1] are resized bilinearly to the size of ``targets`` (B, T, H, W);
    ``present`` (B, T) bool selects the pairs averaged. No present pair gives 0 (still differentiable).
    ``smooth`` counts the units the sums run over: pixels of ``targets``, i.e. grid cells at the CAM
    grid (see the module docstring).
    """
    if maps.shape[-2:] != targets.shape[-2:]:
        maps = F.interpolate(maps, size=targets.shape[-2:], mode="bilinear", align_corners=False)
    targets = targets.to(maps.dtype)
    tp = (maps * targets).sum(dim=(-2, -1))
    tn = ((1 - maps) * (1 - targets)).sum(dim=(-2, -1))
    pos = targets.sum(dim=(-2, -1))
    neg = (1 - targets).sum(dim=(-2, -1))
    score = alpha * (tp + smooth) / (pos + smooth) + (1 - alpha) * (tn + smooth) / (neg + smooth)
    weight = present.to(maps.dtype)
    return ((1 - score) * weight).sum() / weight.sum().clamp_min(1)


def maps_at_grid(maps: torch.Tensor, grid: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Reference maps (B, T, H, W) averaged over area to ``grid`` = (h, w): cell (i, j) holds the mean of
    the pixels [⌊iH/h⌋, ⌈(i+1)H/h⌉) × [⌊jW/w⌋, ⌈(j+1)W/w⌉) (adaptive average pooling; the exact cell
    area when h divides H and w divides W)."""
    if tuple(maps.shape[-2:]) == tuple(grid):
        return maps
    height, width = grid
    return F.adaptive_avg_pool2d(maps, (height, width))


def class_weight_tensor(weights: Mapping[str, float] | None,
                        classes: tuple[str, ...] = vocab.DIAGNOSES) -> torch.Tensor | None:
    """Class weights given BY NAME (any accepted spelling), as a tensor in ``classes`` order; classes
    not named get weight 1."""
    if not weights:
        return None
    names = vocab.resolve(list(weights), classes)
    by_name = dict(zip(names, weights.values(), strict=True))
    return torch.tensor([float(by_name.get(c, 1.0)) for c in classes])


def char_pos_weight_tensor(labels: torch.Tensor, spec: str | float | None,
                           max_weight: float = 10.0) -> torch.Tensor | None:
    """BCE ``pos_weight`` per characteristic from (n, T) training labels: ``"balanced"`` gives
    n_negative / n_positive clipped to [1, ``max_weight``] (a characteristic never present gets
    ``max_weight``); a number gives that weight to all; ``None`` gives ``None``."""
    if spec is None or labels.ndim != 2 or labels.shape[1] == 0:
        return None
    if spec != "balanced":
        return torch.full((labels.shape[1],), float(spec))
    positive = (labels > 0.5).sum(0).float()
    ratio = (labels.shape[0] - positive) / positive.clamp_min(1e-9)
    return ratio.clamp(1.0, max_weight)


@dataclass
class LossParts:
    total: torch.Tensor
    diagnosis: torch.Tensor
    characteristic: torch.Tensor
    attention: torch.Tensor


class DermXLoss(nn.Module):
    """``dx_weight`` × CE(diagnosis) + ``char_weight`` × BCE(characteristics) + ``ga_weight`` × GA (maps given
    by the caller). The parts are returned unweighted."""

    class_weights: torch.Tensor | None  # buffers, registered in __init__
    char_pos_weight: torch.Tensor | None

    def __init__(self, *, class_weights: torch.Tensor | None = None, ga_weight: float = 0.0,
                 alpha: float = 0.5, smooth: float = 1.0, char_pos_weight: torch.Tensor | None = None,
                 char_weight: float = 1.0, dx_weight: float = 1.0) -> None:
        super().__init__()
        self.char_weight = char_weight
        self.dx_weight = dx_weight
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.register_buffer("char_pos_weight", char_pos_weight, persistent=False)
        self.ga_weight = ga_weight
        self.alpha = alpha
        self.smooth = smooth

    def forward(self, outputs: Mapping[str, torch.Tensor], diagnosis: torch.Tensor,
                characteristics: torch.Tensor | None = None, maps: torch.Tensor | None = None,
                target_maps: torch.Tensor | None = None) -> LossParts:
        dx = F.cross_entropy(outputs["diagnosis"], diagnosis, weight=self.class_weights)
        zero = dx.new_zeros(())
        char = zero
        if "characteristic" in outputs and characteristics is not None:
            char = F.binary_cross_entropy_with_logits(outputs["characteristic"], characteristics.to(dx.dtype),
                                                      pos_weight=self.char_pos_weight)
        attention = zero
        if maps is not None and target_maps is not None and characteristics is not None:
            attention = guided_attention_loss(maps, target_maps, characteristics > 0.5, alpha=self.alpha,
                                              smooth=self.smooth)
        return LossParts(self.dx_weight * dx + self.char_weight * char + self.ga_weight * attention, dx, char,
                         attention)
