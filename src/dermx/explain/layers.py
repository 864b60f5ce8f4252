"""Target layers: by dotted name or module, with defaults per architecture family.

Names are dotted module paths as in ``model.named_modules()``; an integer part indexes a container
and may be negative, and ``layer4[-1]`` is accepted for ``layer4.-1``. Defaults, first match wins:

1. ``model.config.cam_layer`` (DermX checkpoints name their layer);
2. ResNet family: the last block of ``layer4`` (``layer4[-1]``, the backbone's output);
3. EfficientNet family (timm): ``bn2``, the activated output of ``conv_head`` that global pooling
   consumes (``conv_head`` itself if there is no ``bn2``);
4. otherwise the last module that outputs a 4-D map larger than 1×1, found by running the model once
   on the ``meta`` device with borrowed ``meta`` parameters and buffers (no compute, no state change).
"""

from __future__ import annotations

import re

import torch
from torch import Tensor, nn
from torch.func import functional_call

from dermx.explain.hooks import record_spatial_outputs


def find_layer(model: nn.Module, path: str) -> nn.Module:
    """The submodule at dotted ``path``; ValueError naming the first part that does not exist."""
    module = model
    walked: list[str] = []
    for part in re.sub(r"\[(-?\d+)\]", r".\1", path).strip(".").split("."):
        children = dict(module.named_children())
        if part in children:
            module = children[part]
        elif re.fullmatch(r"-?\d+", part) and isinstance(module, nn.Sequential | nn.ModuleList):
            if not -len(module) <= int(part) < len(module):
                raise ValueError(f"layer {path!r}: index {part} out of range in {'.'.join(walked) or 'model'}")
            module = module[int(part)]
        else:
            where = ".".join(walked) or "the model"
            raise ValueError(f"layer {path!r} does not exist: {where} has no child {part!r} "
                             f"(children: {list(children)})")
        walked.append(part)
    return module


def layer_name(model: nn.Module, module: nn.Module) -> str:
    """Dotted name of ``module`` inside ``model``; ValueError if it is not part of the model."""
    for name, candidate in model.named_modules():
        if candidate is module:
            return name
    raise ValueError(f"layer {type(module).__name__} is not a submodule of the model")


def default_layer_name(model: nn.Module, example: Tensor) -> str:
    """The default target layer of ``model`` (rules in the module docstring)."""
    config_layer = getattr(getattr(model, "config", None), "cam_layer", None)
    if isinstance(config_layer, str) and config_layer:
        return config_layer
    modules = dict(model.named_modules())
    for name, module in modules.items():
        if name.rsplit(".", 1)[-1] == "layer4" and isinstance(module, nn.Sequential) and len(module):
            return f"{name}.{len(module) - 1}"
    for name in modules:
        prefix, _, last = name.rpartition(".")
        if last == "conv_head":
            bn2 = f"{prefix}.bn2" if prefix else "bn2"
            return bn2 if bn2 in modules else name
    return last_spatial_layer(model, example)


def last_spatial_layer(model: nn.Module, example: Tensor) -> str:
    """Name of the last module to output a 4-D map larger than 1×1, found by a ``meta`` forward."""
    state = {name: torch.empty_like(t, device="meta") for name, t in (*model.named_parameters(),
                                                                      *model.named_buffers())}
    probe = torch.empty_like(example[:1], device="meta")
    try:
        with record_spatial_outputs(model) as records, torch.no_grad():
            functional_call(model, state, (probe,), strict=False, tie_weights=True)
    except (RuntimeError, NotImplementedError, TypeError) as error:
        raise ValueError(f"cannot find a default target layer ({error}); pass layer=...") from error
    if not records:
        raise ValueError("the model has no layer that outputs a 4-D map larger than 1x1; pass layer=...")
    return records[-1][0]


def resolve_layer(model: nn.Module, layer: str | nn.Module | None, example: Tensor) -> tuple[str, nn.Module]:
    """``(name, module)`` of the target layer given by name, module or ``None`` (the default); the name
    is the module's canonical dotted name (``layer4[-1]`` → ``layer4.2``)."""
    if isinstance(layer, nn.Module):
        return layer_name(model, layer), layer
    module = find_layer(model, default_layer_name(model, example) if layer is None else layer)
    return layer_name(model, module), module
