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

The map grid. A CAM has one value per cell of the CAM layer's output, so its grid is the input size
divided by the backbone's *output stride* s (the product of its strides up to that layer), rounded
up: 224 px at s = 32 is a 7×7 grid, and 64 px is 2×2 — four numbers upsampled, too coarse to point at
a lesion. ``output_stride`` (timm's option; 8, 16 or 32) replaces the strides of the last stages by
dilated convolutions: the receptive fields and the weights' shapes stay the same, the grid becomes
input / s and the compute of those stages grows by about (32 / s)². Each preset's grid at its input
size (``DermXNet.map_grid`` measures it for any model):

| preset          | backbone        | input (px) | stride s | map grid |
|-----------------|-----------------|-----------:|---------:|---------:|
| small           | resnet18        | 128        | 32       | 4 × 4    |
| cpu             | resnet10t       | 112        | 32       | 4 × 4    |
| tiny            | resnet10t (½)   | 64         | 8        | 8 × 8    |
| resnet50        | resnet50        | 256        | 32       | 8 × 8    |
| efficientnet_b2 | efficientnet_b2 | 260        | 32       | 9 × 9    |
| efficientnet_b4 | efficientnet_b4 | 380        | 32       | 12 × 12  |

``tiny``: the demo's preset, for maps that localise after a minute of training from scratch on a CPU.
ResNet-10t at half width (timm's ``channels=(32, 64, 128, 256)``, passed as ``backbone_args``; no
pretrained weights fit it) at stride 8 (dilated ``layer3`` and ``layer4``): 8 × 8 maps at 64 px where
``cpu`` gives 2 × 2. Dilation multiplies the cost of the last stages by (32 / 8)² = 16; halving every
width divides it by about 4 (measured: a DermX+ step at 64 px costs about what full-width ResNet-10t
costs at stride 32; BENCHMARKS.md). Any preset takes another stride through
``build_model(..., output_stride=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preset:
    """How to build and feed one backbone."""

    name: str
    backbone: str
    input_size: tuple[int, int]
    cam_layer: str
    output_stride: int = 32
    backbone_args: tuple[tuple[str, Any], ...] = ()
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("small", "resnet18", (128, 128), "backbone.layer4"),
        Preset("cpu", "resnet10t", (112, 112), "backbone.layer4"),
        Preset("tiny", "resnet10t", (64, 64), "backbone.layer4", output_stride=8,
               backbone_args=(("channels", (32, 64, 128, 256)),)),
        Preset("resnet50", "resnet50", (256, 256), "backbone.layer4.2.conv3"),
        Preset("efficientnet_b2", "efficientnet_b2", (260, 260), "backbone.conv_head"),
        Preset("efficientnet_b4", "efficientnet_b4", (380, 380), "backbone.conv_head"),
    )
}


#: Output strides timm's dilation option accepts.
OUTPUT_STRIDES: tuple[int, ...] = (8, 16, 32)


def check_output_stride(stride: int) -> None:
    """ValueError unless ``stride`` is one of :data:`OUTPUT_STRIDES`."""
    if stride not in OUTPUT_STRIDES:
        raise ValueError(f"output stride must be one of {OUTPUT_STRIDES}, got {stride!r}")


def get_preset(name: str) -> Preset:
    """The preset called ``name``; raises ``ValueError`` listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
