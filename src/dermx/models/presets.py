"""Backbone presets: a timm architecture with its input size, normalisation and CAM target layer.

The CAM layer is a dotted module name inside a :class:`~dermx.models.DermXNet` (the backbone lives
under ``backbone.``). DermX computes characteristic maps at the last 1×1 convolution of the last
block: ``layer4.2.conv3`` for ResNet-50, the 1×1 head convolution ``conv_head`` for EfficientNets.

ResNet-18 / ResNet-10t (basic blocks) have no 1×1 convolution in their last block; their CAM layer is
the last block's output (``layer4``, what global pooling consumes). Not ``layer4.1.conv2``: that conv
feeds the block's last batch norm, which timm initialises to ZERO (``zero_init_last``), so from random
weights every Grad-CAM there is exactly 0 and the DermX+ guided-attention loss has no gradient. At the
block output the maps are alive from the first step and the CAM engine takes its fast ``jacobian``
route (no double backward through the backbone to build the maps).

``cpu``: a preset for training from random weights on a CPU in minutes (ResNet-10t, 112 px). The demo
runs it at 64 px on its synthetic images (measured: at equal compute 64 px learned faster than 96 px
there); 112 px stays the default for real photographs, whose fine detail small inputs would lose.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preset:
    """How to build and feed one backbone."""

    name: str
    backbone: str
    input_size: tuple[int, int]
    cam_layer: str
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("small", "resnet18", (128, 128), "backbone.layer4"),
        Preset("cpu", "resnet10t", (112, 112), "backbone.layer4"),
        Preset("resnet50", "resnet50", (256, 256), "backbone.layer4.2.conv3"),
        Preset("efficientnet_b2", "efficientnet_b2", (260, 260), "backbone.conv_head"),
        Preset("efficientnet_b4", "efficientnet_b4", (380, 380), "backbone.conv_head"),
    )
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; raises ``ValueError`` listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
