"""DermX, DermX+ and diagnosis-only networks, presets, backbone weights and shareable checkpoints."""

from dermx.models.backbone import create_backbone
from dermx.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from dermx.models.dermx_net import MODEL_KINDS, DermXNet, ModelConfig, ModelKind, build_model
from dermx.models.presets import PRESETS, Preset, get_preset
from dermx.models.weights import WeightsError, load_backbone_weights

__all__ = [
    "MODEL_KINDS",
    "PRESETS",
    "CheckpointError",
    "DermXNet",
    "ModelConfig",
    "ModelKind",
    "Preset",
    "WeightsError",
    "build_model",
    "create_backbone",
    "get_preset",
    "load_backbone_weights",
    "load_checkpoint",
    "save_checkpoint",
]
