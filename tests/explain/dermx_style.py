"""A DermX-style multi-head network around any timm-protocol backbone, for tests and benchmarks.

Follows the model protocol of :mod:`dermx.explain.engine`: ``forward_features`` → (B, C, h, w);
``forward_head`` begins with global average pooling and returns ``{"characteristic", "diagnosis"}``
logits; ``target_names`` names each head's outputs. Heads as in docs/design.md §7.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dermx.vocab import CHARACTERISTICS, DIAGNOSES


class DermXStyleNet(nn.Module):
    """``backbone`` must provide ``forward_features``; ``channels`` is its output width."""

    def __init__(self, backbone: nn.Module, channels: int, characteristics: tuple[str, ...],
                 hidden: int = 64, dropout: float = 0.2) -> None:
        super().__init__()
        self.backbone = backbone
        self.target_names = {"characteristic": characteristics, "diagnosis": DIAGNOSES}
        self.characteristic_head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(channels, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, len(characteristics)),
        )
        self.diagnosis_hidden = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(channels, hidden), nn.ReLU(), nn.Dropout(dropout),
        )
        self.diagnosis_out = nn.Linear(hidden + len(characteristics), len(DIAGNOSES))

    def forward_features(self, x: Tensor) -> Tensor:
        return self.backbone.forward_features(x)

    def forward_head(self, features: Tensor) -> dict[str, Tensor]:
        pooled = features.mean(dim=(-2, -1))
        characteristic = self.characteristic_head(pooled)
        diagnosis = self.diagnosis_out(torch.cat([self.diagnosis_hidden(pooled), characteristic], dim=1))
        return {"characteristic": characteristic, "diagnosis": diagnosis}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.forward_head(self.forward_features(x))


class TinyBackbone(nn.Module):
    """Two conv-BN-ReLU stages, stride 4 overall, 16 output channels, timm-style ``forward_features``."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.stage = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())

    def forward_features(self, x: Tensor) -> Tensor:
        return self.stage(self.stem(x))


def make_tiny_dermx(dropout: float = 0.2, seed: int = 0) -> DermXStyleNet:
    """A seeded DermX-style net on :class:`TinyBackbone` (16 characteristics, 6 diagnoses), eval mode."""
    torch.manual_seed(seed)
    model = DermXStyleNet(TinyBackbone(), channels=16, characteristics=CHARACTERISTICS, hidden=32, dropout=dropout)
    with torch.no_grad():  # non-trivial batch-norm statistics
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()
