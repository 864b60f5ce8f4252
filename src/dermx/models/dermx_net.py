"""DermX, DermX+ and diagnosis-only networks around any timm backbone.

backbone → global average pooling → f ∈ R^C.

- characteristic head: dropout, Linear(C, 64), ReLU, dropout, Linear(64, n_char) → z_char;
- diagnosis head: dropout, Linear(C, 64), ReLU, dropout → h; Linear(64 + n_char, 6) on [h, z_char]
  → z_dx (``dx-only``: Linear(64, 6) on h).

``dermx+`` is the same network as ``dermx``, trained with the guided-attention loss.
``forward(x)`` returns ``{"characteristic": z_char, "diagnosis": z_dx}`` (logits, in that order).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from torch import nn

from dermx import vocab
from dermx.models.backbone import create_backbone, last_conv_name
from dermx.models.presets import IMAGENET_MEAN, IMAGENET_STD, get_preset

ModelKind = Literal["dx-only", "dermx", "dermx+"]
MODEL_KINDS: tuple[str, ...] = get_args(ModelKind)
#: How an image is fitted to the input size: keep the aspect ratio and pad, keep it and crop, or squash.
ResolutionPolicy = Literal["pad", "crop", "squash"]
RESOLUTION_POLICIES: tuple[str, ...] = get_args(ResolutionPolicy)


def check_resolution(policy: str) -> None:
    """ValueError unless ``policy`` is one of :data:`RESOLUTION_POLICIES`."""
    if policy not in RESOLUTION_POLICIES:
        raise ValueError(f"unknown resolution policy {policy!r}; expected one of {RESOLUTION_POLICIES}")
HIDDEN = 64


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model for inference (stored in shareable checkpoints).

    ``resolution`` is the policy images were fitted to ``input_size`` with in training; inference
    (``dermx predict``, the benchmark) uses the same one unless told otherwise. Checkpoints written
    before it was recorded load with ``pad``, the training default.
    """

    backbone: str
    kind: ModelKind = "dermx"
    preset: str | None = None
    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    cam_layer: str = ""
    diagnoses: tuple[str, ...] = vocab.DIAGNOSES
    characteristics: tuple[str, ...] = vocab.CHARACTERISTICS
    dropout: float = 0.2
    resolution: ResolutionPolicy = "pad"
    training_data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {self.kind!r}; expected one of {MODEL_KINDS}")
        check_resolution(self.resolution)
        self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
        self.mean = tuple(float(v) for v in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(v) for v in self.std)  # type: ignore[assignment]
        self.diagnoses = tuple(self.diagnoses)
        self.characteristics = () if self.kind == "dx-only" else tuple(self.characteristics)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def _mlp(in_features: int, dropout: float) -> nn.Sequential:
    """dropout, Linear(C, 64), ReLU, dropout."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, HIDDEN), nn.ReLU(), nn.Dropout(dropout))


class DermXNet(nn.Module):
    """A DermX-family network; see the module docstring for the architecture."""

    def __init__(self, config: ModelConfig, *, pretrained: bool = False,
                 weights: str | Path | None = None) -> None:
        super().__init__()
        self.backbone = create_backbone(config.backbone, pretrained=pretrained, weights=weights)
        if not config.cam_layer:
            config.cam_layer = last_conv_name(self.backbone)
        self.config = config
        width = int(self.backbone.num_features)
        n_char = len(config.characteristics)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.diagnosis_mlp = _mlp(width, config.dropout)
        self.diagnosis_out = nn.Linear(HIDDEN + n_char, len(config.diagnoses))
        self.characteristic_head: nn.Sequential | None = None
        if n_char:
            self.characteristic_head = nn.Sequential(*_mlp(width, config.dropout), nn.Linear(HIDDEN, n_char))
        self.target_names: dict[str, tuple[str, ...]] = (
            {"characteristic": config.characteristics, "diagnosis": config.diagnoses}
            if n_char else {"diagnosis": config.diagnoses})
        module_names = dict(self.named_modules())
        if config.cam_layer not in module_names:
            raise ValueError(f"CAM layer {config.cam_layer!r} is not a module of {config.backbone}")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone feature maps (B, C, h, w)."""
        return self.backbone(x)

    def forward_head(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Global average pooling, then the heads (logits)."""
        pooled = self.pool(features).flatten(1)
        hidden = self.diagnosis_mlp(pooled)
        if self.characteristic_head is None:
            return {"diagnosis": self.diagnosis_out(hidden)}
        characteristic = self.characteristic_head(pooled)
        diagnosis = self.diagnosis_out(torch.cat([hidden, characteristic], dim=1))
        return {"characteristic": characteristic, "diagnosis": diagnosis}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_head(self.forward_features(x))

    def cam_module(self) -> nn.Module:
        """The module whose output is the CAM layer's activation."""
        return self.get_submodule(self.config.cam_layer)


def build_model(
    preset: str | None = "small",
    *,
    kind: ModelKind = "dermx",
    backbone: str | None = None,
    characteristics: str | tuple[str, ...] | list[str] | None = None,
    input_size: tuple[int, int] | None = None,
    cam_layer: str | None = None,
    dropout: float = 0.2,
    pretrained: bool = False,
    weights: str | Path | None = None,
) -> DermXNet:
    """Build a network from a preset (``small``, ``resnet50``, ``efficientnet_b2``, ...) or any timm
    ``backbone`` name. ``characteristics``: ``None`` = all 16, ``"paper"`` = the paper's 10, or names.
    """
    if preset is None and backbone is None:
        raise ValueError("give a preset or a timm backbone name")
    base = get_preset(preset) if preset else None
    if characteristics == "paper":
        chars = vocab.PAPER_CHARACTERISTICS
    else:
        chars = vocab.resolve(characteristics, vocab.CHARACTERISTICS)  # type: ignore[arg-type]
    config = ModelConfig(
        backbone=backbone or base.backbone,  # type: ignore[union-attr]
        kind=kind,
        preset=preset,
        input_size=input_size or (base.input_size if base else (224, 224)),
        mean=base.mean if base else IMAGENET_MEAN,
        std=base.std if base else IMAGENET_STD,
        cam_layer=cam_layer or (base.cam_layer if base and backbone in (None, base.backbone) else ""),
        characteristics=chars,
        dropout=dropout,
    )
    return DermXNet(config, pretrained=pretrained, weights=weights)
