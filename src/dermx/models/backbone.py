"""timm backbones without classifier or pooling: ``forward(x) -> (B, C, h, w)`` feature maps."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
from torch import nn

from dermx.models.presets import check_output_stride
from dermx.models.weights import load_backbone_weights


def create_backbone(name: str, *, pretrained: bool = False, weights: str | Path | None = None,
                    output_stride: int = 32, backbone_args: Mapping[str, Any] | None = None) -> nn.Module:
    """A timm model ``name`` with no head (``num_classes=0, global_pool=""``).

    ``output_stride`` (8, 16 or 32) is timm's dilation option: the last stages keep stride 1 and dilate
    their convolutions instead, so the feature grid is input / ``output_stride``; the weights' shapes do
    not change, so pretrained weights load either way. 32 is every timm CNN's own (and passes nothing:
    architectures without the option still build). ``backbone_args`` are further keyword arguments of
    the timm architecture (e.g. ResNet's ``channels``); an argument it does not take is a ValueError.

    Weights: ``weights`` (a local file) if given; else, with ``pretrained=True``, the timm hub, and
    when that fails (offline, unknown tag) random initialisation with an explicit warning. The module's
    ``weight_source`` attribute records what actually happened: ``{"source": "file", "file", "sha256"}``,
    ``{"source": "hub", "name", "tag"}`` or ``{"source": "random"}``.
    """
    if not timm.is_model(name):
        raise ValueError(f"unknown timm backbone {name!r}")
    check_output_stride(output_stride)
    options: dict[str, Any] = {**(backbone_args or {}), "num_classes": 0, "global_pool": ""}
    if output_stride != 32:
        options["output_stride"] = output_stride
    try:
        if weights is not None:
            model = timm.create_model(name, pretrained=False, **options)
            load_backbone_weights(model, weights)
            return model
        if pretrained:
            try:
                model = timm.create_model(name, pretrained=True, **options)
                hub = model.pretrained_cfg.get("hf_hub_id") or model.pretrained_cfg.get("url") or name
                model.weight_source = {"source": "hub", "name": str(hub),
                                       "tag": str(model.pretrained_cfg.get("tag") or "")}
                return model
            except Exception as error:  # any hub failure (offline, unknown tag) falls back to random
                warnings.warn(f"could not download pretrained {name!r} weights ({type(error).__name__}: "
                              f"{error}); using RANDOM initialisation. Pass a local weight file to use "
                              "pretrained weights offline.", stacklevel=2)
        model = timm.create_model(name, pretrained=False, **options)
        model.weight_source = {"source": "random"}
        return model
    except (TypeError, AssertionError) as error:
        given = {k: v for k, v in options.items() if k not in ("num_classes", "global_pool")}
        if not given:
            raise
        listed = ", ".join(f"{k}={v!r}" for k, v in given.items())
        raise ValueError(f"timm backbone {name!r} cannot be built with {listed} "
                         f"({type(error).__name__}: {error})") from error


def last_conv_name(module: nn.Module, prefix: str = "backbone") -> str:
    """Dotted name of the last ``Conv2d`` of ``module`` (default CAM layer for an unknown backbone)."""
    names = [n for n, m in module.named_modules() if isinstance(m, nn.Conv2d)]
    if not names:
        raise ValueError("backbone has no Conv2d layer to use as CAM layer")
    return f"{prefix}.{names[-1]}"
