"""Input checks shared by the map metrics: clear ``ValueError`` messages that name the argument."""

from __future__ import annotations

import torch
from torch import Tensor


def as_float(name: str, x: Tensor) -> Tensor:
    """Return ``x`` as a floating tensor (bool and integer masks become the default float dtype).

    Raises ``TypeError`` if ``x`` is not a tensor and ``ValueError`` if it has fewer than two dims
    (the last two are the pixel grid ``H, W``) or holds NaN.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dims (..., H, W), got shape {tuple(x.shape)}")
    if x.is_complex():
        raise ValueError(f"{name} must be real-valued, got dtype {x.dtype}")
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if torch.isnan(x).any():
        raise ValueError(f"{name} contains NaN")
    return x


def check_unit_interval(name: str, x: Tensor) -> Tensor:
    """Validate a membership map: a floating tensor with every value in [0, 1]."""
    x = as_float(name, x)
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"{name} must lie in [0, 1], found values in [{x.min().item():g}, {x.max().item():g}]")
    return x


def check_finite(name: str, x: Tensor, *, nonnegative: bool = False) -> Tensor:
    """Validate a saliency map: finite values, and no negative value if ``nonnegative``."""
    x = as_float(name, x)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains infinite values")
    if nonnegative and x.numel() and x.min() < 0:
        raise ValueError(f"{name} must be non-negative, found minimum {x.min().item():g}")
    return x


def check_pair(pred_name: str, prediction: Tensor, ref_name: str, reference: Tensor) -> tuple[int, ...]:
    """Check that two maps can be compared pixel-wise and return their broadcast leading shape.

    Both must have the same number of dims and the same pixel grid (last two dims); leading dims
    broadcast by the usual rules (size 1 stretches). Broadcasting is explicit: a reference
    ``(B, T, H, W)`` compared with predictions ``(B, T, R, H, W)`` must be unsqueezed to
    ``(B, T, 1, H, W)``; right-aligning dims silently would pair the wrong axes.
    Both must live on the same device.
    """
    ps, rs = tuple(prediction.shape), tuple(reference.shape)
    if len(ps) != len(rs):
        raise ValueError(
            f"{pred_name} shape {ps} and {ref_name} shape {rs} have different numbers of dims; "
            "unsqueeze the missing axes so that broadcasting is explicit"
        )
    if ps[-2:] != rs[-2:]:
        raise ValueError(f"{pred_name} grid {ps[-2:]} differs from {ref_name} grid {rs[-2:]} (last two dims)")
    try:
        leading = torch.broadcast_shapes(ps[:-2], rs[:-2])
    except RuntimeError as err:
        raise ValueError(
            f"{pred_name} shape {ps} and {ref_name} shape {rs} do not broadcast in their leading dims"
        ) from err
    if prediction.device != reference.device:
        raise ValueError(f"{pred_name} is on {prediction.device} but {ref_name} is on {reference.device}")
    return tuple(leading)
