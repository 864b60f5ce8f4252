"""Gradient routes: every target's ∂y_c/∂A from one forward pass.

All routes compute the same quantity, the gradient of Σ_b y_{b,c} (the target logit summed over the
batch, as pytorch-grad-cam does) with respect to the target layer's activations A (B, K, h, w):

- ``linear``: A is the backbone output, the head is f = GAP(A) followed by an affine classifier
  y = W f + b. Then ∂y_c/∂A_kij = W_ck / (h·w): no backward pass at all (CAM equals Grad-CAM here).
- ``jacobian``: A feeds GAP and then any head g. Then ∂y_c/∂A_kij = (∂g_c/∂f_k) / (h·w), and the
  head's Jacobian comes from one backward pass through the head alone with batched one-hot
  cotangents.
- ``batched``: any layer. One backward pass from the logits to A with T batched one-hot cotangents
  (``torch.autograd.grad(..., is_grads_batched=True)``, vmapped over the targets).
- ``loop``: the reference, one backward pass per target.

``auto`` picks ``linear``, else ``jacobian``, else ``batched``: the fastest exact one that applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Route = Literal["auto", "linear", "jacobian", "batched", "loop"]
ROUTES: tuple[str, ...] = get_args(Route)


def head_pools_first(model: nn.Module) -> bool:
    """Whether ``model.forward_head`` is known to begin with global average pooling.

    True for the DermX multi-head protocol (a model with ``target_names``) and for timm models whose
    top-level ``global_pool`` averages (ResNet, EfficientNet, MobileNet, DenseNet, ...). Models whose
    head does anything before pooling (e.g. timm VGG's ``pre_logits``) keep their pool inside
    ``head`` and are not matched; they take the ``batched`` route, which is exact for any layer.
    """
    if not (callable(getattr(model, "forward_features", None)) and callable(getattr(model, "forward_head", None))):
        return False
    if hasattr(model, "target_names"):
        return True
    from timm.layers import SelectAdaptivePool2d

    pool = getattr(model, "global_pool", None)
    if isinstance(pool, nn.AdaptiveAvgPool2d):
        return pool.output_size in (1, (1, 1))
    return isinstance(pool, SelectAdaptivePool2d) and pool.pool_type == "avg"


def linear_weights(model: nn.Module, pooled: Tensor, logits: Tensor) -> Tensor | None:
    """The classifier weight W (N, C) if, on this batch, the head is exactly y = W f + b; else None.

    The candidate is timm's ``model.get_classifier()``; it is accepted only if recomputing W f + b from
    the pooled features reproduces the logits (this rejects hidden layers, active dropout, etc.).
    """
    get_classifier = getattr(model, "get_classifier", None)
    classifier = get_classifier() if callable(get_classifier) else None
    if not isinstance(classifier, nn.Linear) or classifier.weight.shape != (logits.shape[1], pooled.shape[1]):
        return None
    with torch.no_grad():
        affine = F.linear(pooled.to(classifier.weight.dtype), classifier.weight, classifier.bias)
        exact = torch.allclose(affine, logits, rtol=1e-5, atol=1e-5)
    return classifier.weight if exact else None


def one_hot_cotangents(logits: Tensor, columns: Sequence[int]) -> Tensor:
    """``(T, B, N)`` cotangents: for target t, ones at column ``columns[t]`` of every image."""
    cotangents = logits.new_zeros(len(columns), *logits.shape)
    cotangents[torch.arange(len(columns)), :, torch.as_tensor(columns)] = 1
    return cotangents


def batched_gradients(logits: Tensor, wrt: Tensor, columns: Sequence[int], create_graph: bool) -> Tensor:
    """``(T, B, ...)``: ∂(Σ_b y_{b,c})/∂wrt for every target column c, in one batched backward pass."""
    (grads,) = torch.autograd.grad(
        logits, wrt, one_hot_cotangents(logits, columns), retain_graph=create_graph,
        create_graph=create_graph, is_grads_batched=True, materialize_grads=True,
    )
    return grads


def loop_gradients(logits: Tensor, wrt: Tensor, columns: Sequence[int], create_graph: bool) -> Tensor:
    """Same as :func:`batched_gradients`, one backward pass per target (the reference route)."""
    return torch.stack([
        torch.autograd.grad(logits[:, c].sum(), wrt, retain_graph=True, create_graph=create_graph,
                            materialize_grads=True)[0]
        for c in columns
    ])
