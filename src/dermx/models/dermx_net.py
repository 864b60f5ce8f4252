"""DermX, DermX+ and diagnosis-only networks around any timm backbone.

backbone → global average pooling → f ∈ R^C.

- characteristic head: dropout, Linear(C, 64), ReLU, dropout, Linear(64, n_char) → z_char;
- diagnosis head: dropout, Linear(C, 64), ReLU, dropout → h; Linear(64 + n_char, 6) on [h, z_char]
  → z_dx (``dx-only``: Linear(64, 6) on h).
- ``cbm``, a concept-bottleneck model (Koh et al., ICML 2020): the diagnosis is computed from the
  characteristics alone, ``z_dx = Linear(n_char, 6)(σ(z_char))``: no side channel ``h``, so every
  diagnosis rests on the characteristics and an intervention on them (:mod:`dermx.models.intervention`)
  reaches the whole diagnosis. The head reads the characteristics' probabilities (``bottleneck_reads``),
  so a characteristic set present or absent (its logit at the 95th or 5th training percentile) is about
  1 or 0 whatever the logits' scale; checkpoints written before the field read the logits,
  ``Linear(z_char)``, and still do. How its head is trained (``bottleneck``: joint, sequential,
  independent) is :mod:`dermx.train.bottleneck`'s.

``dermx+`` is the same network as ``dermx``, trained with the guided-attention loss (which any kind with
characteristics can also take: ``cbm`` with a guided-attention weight).
``forward(x)`` returns ``{"characteristic": z_char, "diagnosis": z_dx}`` (logits, in that order).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args

import torch
from torch import nn

from dermx import vocab
from dermx.choices import BottleneckMode, ModelKind
from dermx.geometry import InputSpec, ResolutionPolicy, check_resolution
from dermx.models.backbone import create_backbone, last_conv_name
from dermx.models.presets import IMAGENET_MEAN, IMAGENET_STD, check_output_stride, get_preset

MODEL_KINDS: tuple[str, ...] = get_args(ModelKind)
#: ``dermxdb``: DermXDB's six classes and (some of) its 16 characteristics; ``own``: the user's names
#: (:mod:`dermx.vocab_map`), mapped onto DermXDB's where they mean the same thing.
Vocabulary = Literal["dermxdb", "own"]
#: What a ``cbm`` model's diagnosis head reads: ``σ(z_char)`` or (checkpoints before the choice) ``z_char``.
BottleneckReads = Literal["probabilities", "logits"]
HIDDEN = 64


class Probabilities(NamedTuple):
    """What the logits of :meth:`DermXNet.forward` mean: ``diagnosis`` (B, n_dx) softmax probabilities,
    ``characteristic`` (B, n_char) sigmoid probabilities ((B, 0) for ``dx-only``)."""

    diagnosis: torch.Tensor
    characteristic: torch.Tensor


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model for inference (stored in shareable checkpoints).

    ``resolution`` is the policy images were fitted to ``input_size`` with in training; inference
    (``dermx predict``, the benchmark) uses the same one unless told otherwise. Checkpoints written
    before it was recorded load with ``pad``, the training default.

    ``output_stride`` is the backbone's (timm's dilation option, see :mod:`dermx.models.presets`): with
    the CAM layer in the last stage, the map grid is about ``input_size / output_stride``. Checkpoints
    written before it was recorded load with 32, timm's default. ``backbone_args`` are further keyword
    arguments of the timm architecture (JSON values; lists become tuples). ``vocabulary`` says whether
    ``diagnoses`` and ``characteristics`` are DermXDB's or the user's own (:data:`Vocabulary`).
    ``calibration`` is the calibration fitted on the validation split at the end of training
    (:meth:`dermx.trust.fitted.ModelCalibration.to_dict`), or ``{"skipped": reason}`` when training could
    not fit one; ``None`` (checkpoints written before it was recorded, or outside ``dermx train``): none.
    ``bottleneck``: how a ``cbm`` model's diagnosis head was trained (``None`` for the other kinds);
    ``bottleneck_reads``: what it reads, the characteristic probabilities (the default) or logits
    (:data:`BottleneckReads`; a ``cbm`` checkpoint without the field was written before it and reads logits).
    ``interventions`` is the rule for setting a characteristic present or absent at test time
    (:meth:`dermx.models.intervention.InterventionRule.to_dict`, fitted on the training images at the end of
    training), or ``None``: the model cannot take interventions.
    """

    backbone: str
    kind: ModelKind = "dermx"
    preset: str | None = None
    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    cam_layer: str = ""
    output_stride: int = 32
    backbone_args: dict[str, Any] = field(default_factory=dict)
    diagnoses: tuple[str, ...] = vocab.DIAGNOSES
    characteristics: tuple[str, ...] = vocab.CHARACTERISTICS
    dropout: float = 0.2
    resolution: ResolutionPolicy = "pad"
    training_data: dict[str, Any] = field(default_factory=dict)
    vocabulary: Vocabulary = "dermxdb"
    calibration: dict[str, Any] | None = None
    interventions: dict[str, Any] | None = None
    bottleneck: BottleneckMode | None = None
    bottleneck_reads: BottleneckReads | None = None

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {self.kind!r}; expected one of {MODEL_KINDS}")
        check_resolution(self.resolution)
        check_output_stride(self.output_stride)
        self.backbone_args = {str(k): tuple(v) if isinstance(v, list) else v for k, v in self.backbone_args.items()}
        self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
        self.mean = tuple(float(v) for v in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(v) for v in self.std)  # type: ignore[assignment]
        self.diagnoses = tuple(self.diagnoses)
        self.characteristics = () if self.kind == "dx-only" else tuple(self.characteristics)
        if self.kind == "cbm":
            if not self.characteristics:
                raise ValueError("a concept-bottleneck (cbm) model needs characteristics: its diagnosis reads them")
            self.bottleneck = self.bottleneck or "joint"
            if self.bottleneck not in get_args(BottleneckMode):
                raise ValueError(f"unknown bottleneck mode {self.bottleneck!r}; expected one of "
                                 f"{get_args(BottleneckMode)}")
            self.bottleneck_reads = self.bottleneck_reads or "probabilities"
            if self.bottleneck_reads not in get_args(BottleneckReads):
                raise ValueError(f"unknown bottleneck input {self.bottleneck_reads!r}; expected one of "
                                 f"{get_args(BottleneckReads)}")
        elif self.bottleneck is not None or self.bottleneck_reads is not None:
            raise ValueError(f"bottleneck {self.bottleneck or self.bottleneck_reads!r} is for cbm models, not "
                             f"{self.kind!r}")

    @property
    def input_spec(self) -> InputSpec:
        """How an image becomes this model's input: size, normalisation and resolution policy."""
        return InputSpec(self.input_size, self.mean, self.std, self.resolution)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["backbone_args"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.backbone_args.items()}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def _mlp(in_features: int, dropout: float) -> nn.Sequential:
    """dropout, Linear(C, 64), ReLU, dropout."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, HIDDEN), nn.ReLU(), nn.Dropout(dropout))


class DermXNet(nn.Module):
    """A DermX-family network; see the module docstring for the architecture."""

    def __init__(self, config: ModelConfig, *, pretrained: bool = False,
                 weights: str | Path | None = None, random_fallback: bool = False) -> None:
        super().__init__()
        self.backbone = create_backbone(config.backbone, pretrained=pretrained, weights=weights,
                                        random_fallback=random_fallback,
                                        output_stride=config.output_stride, backbone_args=config.backbone_args)
        if not config.cam_layer:
            config.cam_layer = last_conv_name(self.backbone)
        self.config = config
        width = int(self.backbone.num_features)  # type: ignore[arg-type]  # timm's models are typed nn.Module
        n_char = len(config.characteristics)
        self.pool = nn.AdaptiveAvgPool2d(1)
        #: ``None`` for a ``cbm`` model: its diagnosis reads the characteristics only (:meth:`head_input`).
        self.diagnosis_mlp: nn.Sequential | None = None if config.kind == "cbm" else _mlp(width, config.dropout)
        self.diagnosis_out = nn.Linear(n_char if config.kind == "cbm" else HIDDEN + n_char, len(config.diagnoses))
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
        return self.heads(self.pool(features).flatten(1))

    def heads(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        """The heads' logits from pooled features ``(B, C)`` (what an intervention recomputes: no backbone)."""
        # the side channel first: training draws its dropout mask before the characteristic head's
        hidden = self.diagnosis_mlp(pooled) if self.diagnosis_mlp is not None else None
        if self.characteristic_head is None:
            assert hidden is not None
            return {"diagnosis": self.diagnosis_out(hidden)}
        characteristic = self.characteristic_head(pooled)
        return {"characteristic": characteristic, "diagnosis": self.diagnosis_out(self.head_input(characteristic,
                                                                                                 hidden))}

    def head_input(self, characteristic: torch.Tensor, hidden: torch.Tensor | None = None) -> torch.Tensor:
        """What the diagnosis layer reads: ``[h, z_char]``, or for a ``cbm`` model ``σ(z_char)`` (``z_char`` for
        a checkpoint whose ``bottleneck_reads`` is ``logits``)."""
        if hidden is not None:
            return torch.cat([hidden, characteristic], dim=1)
        return characteristic.sigmoid() if self.config.bottleneck_reads == "probabilities" else characteristic

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_head(self.forward_features(x))

    @staticmethod
    def probabilities(outputs: dict[str, torch.Tensor]) -> Probabilities:
        """Decode :meth:`forward`'s logits: ``softmax(z_dx)`` over the classes and ``sigmoid(z_char)`` per
        characteristic; without a characteristic head (``dx-only``) an empty (B, 0) tensor. Half-precision
        logits (autocast) are decoded in float32; float32 and float64 logits keep their dtype."""
        diagnosis = outputs["diagnosis"]
        dtype = torch.promote_types(diagnosis.dtype, torch.float32)
        probabilities = diagnosis.to(dtype).softmax(dim=1)
        characteristic = outputs.get("characteristic")
        return Probabilities(probabilities, characteristic.to(dtype).sigmoid() if characteristic is not None
                             else probabilities[:, :0])

    def cam_module(self) -> nn.Module:
        """The module whose output is the CAM layer's activation."""
        return self.get_submodule(self.config.cam_layer)

    def map_grid(self, input_size: tuple[int, int] | None = None) -> tuple[int, int]:
        """(h, w) of the CAM layer's output for an input of ``input_size`` (default: the model's), measured
        by one forward pass of a single zero image up to that layer (no gradients, mode unchanged)."""
        size = input_size or self.config.input_size
        grid: list[tuple[int, int]] = []

        def stop(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            grid.append((int(output.shape[-2]), int(output.shape[-1])))
            raise _GridFoundError

        handle = self.cam_module().register_forward_hook(stop)
        training = self.training
        try:
            self.eval()
            with torch.no_grad(), contextlib.suppress(_GridFoundError):
                parameter = next(self.parameters())
                self.forward_features(torch.zeros(1, 3, *size, dtype=parameter.dtype, device=parameter.device))
        finally:
            handle.remove()
            self.train(training)
        if not grid:
            raise RuntimeError(f"CAM layer {self.config.cam_layer!r} produced no output in a forward pass")
        return grid[0]


class _GridFoundError(Exception):
    """Stops :meth:`DermXNet.map_grid`'s forward pass at the CAM layer."""


def build_model(
    preset: str | None = "small",
    *,
    kind: ModelKind = "dermx",
    backbone: str | None = None,
    characteristics: str | tuple[str, ...] | list[str] | None = None,
    input_size: tuple[int, int] | None = None,
    cam_layer: str | None = None,
    dropout: float = 0.2,
    output_stride: int | None = None,
    pretrained: bool = False,
    weights: str | Path | None = None,
    random_fallback: bool = False,
    diagnoses: Sequence[str] | None = None,
    vocabulary: Vocabulary = "dermxdb",
    bottleneck: BottleneckMode | None = None,
) -> DermXNet:
    """Build a network from a preset (``small``, ``cpu``, ``resnet50``, ``efficientnet_b2``, ...) or any timm
    ``backbone`` name. ``characteristics``: ``None`` = all 16, ``"paper"`` = the paper's 10, or names.
    ``output_stride``: 8, 16 or 32 (default: the preset's when its backbone is used, else 32); see
    :mod:`dermx.models.presets`. ``pretrained``, ``weights`` (a local backbone weight file) and
    ``random_fallback``: the backbone's starting weights (:func:`~dermx.models.backbone.create_backbone`).
    ``bottleneck``: how a ``cbm`` model's head is trained (default ``joint``; only for ``cbm``).
    """
    base = get_preset(preset) if preset else None
    backbone_name = backbone or (base.backbone if base else None)
    if not backbone_name:
        raise ValueError("give a preset or a timm backbone name")
    own = base if base and backbone in (None, base.backbone) else None  # the preset's layer and stride apply
    if characteristics == "paper":
        chars = vocab.PAPER_CHARACTERISTICS
    elif vocabulary == "own" and not isinstance(characteristics, str):
        chars = tuple(characteristics or ())
    else:
        chars = vocab.resolve(characteristics, vocab.CHARACTERISTICS)
    config = ModelConfig(
        backbone=backbone_name,
        kind=kind,
        preset=preset,
        input_size=input_size or (base.input_size if base else (224, 224)),
        mean=base.mean if base else IMAGENET_MEAN,
        std=base.std if base else IMAGENET_STD,
        cam_layer=cam_layer or (own.cam_layer if own else ""),
        output_stride=output_stride or (own.output_stride if own else 32),
        backbone_args=dict(own.backbone_args) if own else {},
        characteristics=chars,
        diagnoses=tuple(diagnoses) if diagnoses is not None else vocab.DIAGNOSES,
        dropout=dropout,
        vocabulary=vocabulary,
        bottleneck=bottleneck,
    )
    return DermXNet(config, pretrained=pretrained, weights=weights, random_fallback=random_fallback)
