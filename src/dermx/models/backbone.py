"""timm backbones without classifier or pooling: ``forward(x) -> (B, C, h, w)`` feature maps."""

from __future__ import annotations

import warnings
from pathlib import Path

import timm
from torch import nn

from dermx.models.weights import load_backbone_weights


def create_backbone(name: str, *, pretrained: bool = False, weights: str | Path | None = None) -> nn.Module:
    """A timm model ``name`` with no head (``num_classes=0, global_pool=""``).

    Weights: ``weights`` (a local file) if given; else, with ``pretrained=True``, the timm hub, and
    when that fails (offline, unknown tag) random initialisation with an explicit warning.
    """
    if not timm.is_model(name):
        raise ValueError(f"unknown timm backbone {name!r}")
    if weights is not None:
        model = timm.create_model(name, pretrained=False, num_classes=0, global_pool="")
        load_backbone_weights(model, weights)
        return model
    if pretrained:
        try:
            return timm.create_model(name, pretrained=True, num_classes=0, global_pool="")
        except Exception as error:  # any hub failure (offline, unknown tag) falls back to random
            warnings.warn(f"could not download pretrained {name!r} weights ({type(error).__name__}: "
                          f"{error}); using RANDOM initialisation. Pass a local weight file to use "
                          "pretrained weights offline.", stacklevel=2)
    return timm.create_model(name, pretrained=False, num_classes=0, global_pool="")


def last_conv_name(module: nn.Module, prefix: str = "backbone") -> str:
    """Dotted name of the last ``Conv2d`` of ``module`` (default CAM layer for an unknown backbone)."""
    names = [n for n, m in module.named_modules() if isinstance(m, nn.Conv2d)]
    if not names:
        raise ValueError("backbone has no Conv2d layer to use as CAM layer")
    return f"{prefix}.{names[-1]}"
