"""CAM methods: each turns target-layer activations (and gradients or scores) into raw maps.

Notation: A ∈ R^{K×h×w} are the target layer's activations for one image, y_c the logit of target c
(never a softmax), G^c_kij = ∂y_c/∂A_kij, Σ_ij sums over the h·w grid. Every method returns raw maps
``(B, T, h, w)`` at the feature grid, before the final ReLU, resizing and normalisation (see
:mod:`dermx.explain.maps`).

Gradients arrive as a tensor broadcastable to ``(B, T, K, h, w)``. When the target layer feeds global
average pooling, G is constant over the grid and arrives with a ``1×1`` grid; every formula below is
written so that both shapes give the same result (spatial sums are ``h·w`` times spatial means).

Maps agree with pytorch-grad-cam except where it departs from the papers' formulas: Grad-CAM++ here
has no absolute ε in its coefficient, and Eigen-CAM's sign is fixed by a stated rule rather than
left to LAPACK (see :func:`gradcam_plus_plus` and :func:`eigencam`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from dermx.choices import CamMethod, method_name

#: Maps a batch of images ``(n, C, H, W)`` to the target logits ``(n, T)``.
ScoreFunction = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class CamInputs:
    """What a method may use: activations, target gradients, the images and a scoring function."""

    activations: Tensor
    n_targets: int
    gradients: Tensor | None = None
    images: Tensor | None = None
    score: ScoreFunction | None = None
    score_batch_size: int = 32

    @property
    def grads(self) -> Tensor:
        if self.gradients is None:
            raise ValueError("this method needs gradients")
        return self.gradients

    @property
    def grid(self) -> int:
        return self.activations.shape[-2] * self.activations.shape[-1]


def _spatial_sum(x: Tensor, grid: int) -> Tensor:
    """Σ_ij over the last two dimensions of ``x`` taken as an h·w grid, even if stored as 1×1."""
    return x.mean(dim=(-2, -1)) * grid


def _weighted_sum(weights: Tensor, activations: Tensor) -> Tensor:
    """Σ_k α_ck A_k: ``(B, T, K)`` weights times ``(B, K, h, w)`` activations → ``(B, T, h, w)``."""
    return torch.einsum("btk,bkhw->bthw", weights.expand(activations.shape[0], -1, -1), activations)


def gradcam(inputs: CamInputs) -> Tensor:
    """Grad-CAM (Selvaraju et al. 2017): α_ck = (1/hw) Σ_ij G^c_kij; map_c = Σ_k α_ck A_k."""
    return _weighted_sum(inputs.grads.mean(dim=(-2, -1)), inputs.activations)


def cam(inputs: CamInputs) -> Tensor:
    """CAM (Zhou et al. 2016): map_c = Σ_k w_ck A_k, w_ck = ∂y_c/∂f_k with f = GAP(A).

    For a linear head w_ck is the class weight; in general it is hw · mean_ij G^c_kij, i.e. Grad-CAM
    times h·w. Only defined when the target layer feeds global average pooling (checked by the engine).
    """
    return gradcam(inputs) * inputs.grid


def hirescam(inputs: CamInputs) -> Tensor:
    """HiResCAM (Draelos & Carin 2020): map_c = Σ_k G^c_k ⊙ A_k (element-wise, no spatial averaging)."""
    return (inputs.grads * inputs.activations[:, None]).sum(dim=2)


def xgradcam(inputs: CamInputs, eps: float = 1e-7) -> Tensor:
    """XGrad-CAM (Fu et al. 2020): α_ck = Σ_ij G^c_kij A_kij / (Σ_ij A_kij + ε); map_c = Σ_k α_ck A_k."""
    grid = inputs.grid
    a = inputs.activations
    weights = _spatial_sum(inputs.grads * a[:, None], grid) / (_spatial_sum(a, grid)[:, None] + eps)
    return _weighted_sum(weights, a)


def gradcam_plus_plus(inputs: CamInputs) -> Tensor:
    """Grad-CAM++ (Chattopadhay et al. 2018, eq. 19; higher derivatives as powers of G):

    a^c_kij = (G^c_kij)² / (2 (G^c_kij)² + Σ_ab A_kab (G^c_kij)³);
    α_ck = Σ_ij a^c_kij ReLU(G^c_kij);  map_c = Σ_k α_ck A_k.

    Exactly the paper's ratio, without an additive ε: for G ≠ 0 it equals 1 / (2 + G Σ_ab A_kab),
    which is how it is evaluated (no G² or G³ to underflow), and it is scale-free in G. The only
    guard is at exact zeros of the paper's denominator, G = 0 or G Σ_ab A_kab = −2, where a = 0. An
    absolute ε (pytorch-grad-cam's 1e-6) would instead dominate wherever 2G² < ε, which holds for a
    large share of the gradients of typical networks, and shrink their coefficients towards 0.
    """
    grads, a, grid = inputs.grads, inputs.activations, inputs.grid
    total = _spatial_sum(a, grid)[:, None, :, None, None]
    denominator = 2 + total * grads
    defined = (grads != 0) & (denominator != 0)
    alpha = torch.where(defined, 1 / torch.where(defined, denominator, torch.ones_like(denominator)), 0)
    return _weighted_sum(_spatial_sum(alpha * grads.clamp(min=0), grid), a)


def layercam(inputs: CamInputs) -> Tensor:
    """LayerCAM (Jiang et al. 2021): map_c = Σ_k ReLU(G^c_k) ⊙ A_k."""
    return (inputs.grads.clamp(min=0) * inputs.activations[:, None]).sum(dim=2)


def eigencam(inputs: CamInputs) -> Tensor:
    """Eigen-CAM (Muhammad & Yeasin 2020): projection on the first principal component.

    With X ∈ R^{hw×K} the activations, one row per position, centred per channel (X̄ = X − mean_ij X)
    and X̄ = U S Vᵀ: map = X̄ v₁, reshaped to h×w. Class-agnostic: every target gets the same map.

    Sign: a principal component is only defined up to its sign (LAPACK, pytorch-grad-cam and
    scikit-learn each pick one by their own rule). Here v₁ is oriented so that the map correlates
    positively with the activation summed over channels, s_ij = Σ_k A_kij:
    Σ_ij map_ij (s_ij − s̄) ≥ 0, i.e. Σ_k v₁k ≥ 0 (since X̄ᵀX̄ v₁ = σ₁² v₁), so the map is high where
    the layer is most active. For non-negative (post-ReLU) activations this is scikit-learn's PCA sign
    on the networks tested; for signed activations (e.g. SiLU) scikit-learn's rule (largest loading
    positive) can disagree. A tie (zero correlation) keeps LAPACK's sign.
    """
    a = inputs.activations
    x = a.flatten(2).transpose(1, 2)
    x = x - x.mean(dim=1, keepdim=True)
    v1 = torch.linalg.svd(x, full_matrices=False).Vh[:, 0, :]
    projection = x @ v1[..., None]
    agreement = (projection[..., 0] * x.sum(dim=-1)).sum(dim=-1)
    projection = projection * torch.where(agreement < 0, -1.0, 1.0).to(projection.dtype)[:, None, None]
    return projection.reshape(a.shape[0], 1, *a.shape[-2:]).expand(-1, inputs.n_targets, -1, -1)


def scorecam(inputs: CamInputs, eps: float = 1e-8) -> Tensor:
    """Score-CAM (Wang et al. 2020): weights from the scores of images masked by each channel.

    M_k = minmax(up(A_k)) with up the bilinear (corner-aligned) upsampling to the input size and
    minmax(z) = (z − min z) / (max z − min z + ε); s_ck = y_c(x ⊙ M_k); α_c = softmax_k(s_c);
    map_c = Σ_k α_ck A_k. One masked forward per channel serves every target at once, in batches of
    ``score_batch_size`` masked images.
    """
    a, images, score = inputs.activations, inputs.images, inputs.score
    if images is None or score is None:
        raise ValueError("Score-CAM needs the images and a scoring function")
    n_channels = a.shape[1]
    scores = []
    for image, maps in zip(images, a, strict=True):
        for start in range(0, n_channels, inputs.score_batch_size):
            chunk = maps[None, start : start + inputs.score_batch_size]
            masks = F.interpolate(chunk, size=images.shape[-2:], mode="bilinear", align_corners=True)[0]
            low = masks.amin(dim=(-2, -1), keepdim=True)
            high = masks.amax(dim=(-2, -1), keepdim=True)
            masks = (masks - low) / (high - low + eps)
            scores.append(score(image[None] * masks[:, None]))
    weights = torch.cat(scores).reshape(a.shape[0], n_channels, -1).transpose(1, 2).softmax(dim=-1)
    return _weighted_sum(weights, a)


@dataclass(frozen=True)
class Method:
    """A CAM method: its map function and what it consumes."""

    name: str
    compute: Callable[[CamInputs], Tensor]
    uses_gradients: bool = False
    uses_scores: bool = False
    needs_pooled_layer: bool = False
    title: str = ""


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("gradcam", gradcam, uses_gradients=True, title="Grad-CAM"),
        Method("gradcam++", gradcam_plus_plus, uses_gradients=True, title="Grad-CAM++"),
        Method("xgradcam", xgradcam, uses_gradients=True, title="XGrad-CAM"),
        Method("hirescam", hirescam, uses_gradients=True, title="HiRes-CAM"),
        Method("layercam", layercam, uses_gradients=True, title="Layer-CAM"),
        Method("cam", cam, uses_gradients=True, needs_pooled_layer=True, title="CAM"),
        Method("scorecam", scorecam, uses_scores=True, title="Score-CAM"),
        Method("eigencam", eigencam, title="Eigen-CAM"),
    )
}
assert tuple(METHODS) == get_args(CamMethod), "dermx.choices.CamMethod must list the engine's methods"


def method_title(name: str) -> str:
    """The method's name as papers write it (``"gradcam"`` → ``"Grad-CAM"``); unknown names unchanged."""
    try:
        return get_method(name).title or name
    except ValueError:
        return name


def get_method(name: str) -> Method:
    """The method called ``name`` (:func:`dermx.choices.method_name`: ``"Grad-CAM++"`` works)."""
    return METHODS[method_name(name)]
