"""Fixtures for the explanation engine: tiny DermX-style net, timm models with random weights."""

from __future__ import annotations

import os

import pytest
import torch
from torch import Tensor, nn

from explain.dermx_style import DermXStyleNet, make_tiny_dermx

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def randomize_batch_norms(model: nn.Module, seed: int) -> None:
    """Random affine batch-norm parameters: timm zero-initialises the last BN of residual blocks,
    which would make every gradient inside a block vanish and inner-layer comparisons vacuous."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(module.bias.shape, generator=generator) * 0.2 - 0.1)


def make_timm(name: str, seed: int = 0) -> nn.Module:
    import timm

    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False)
    randomize_batch_norms(model, seed)
    return model.eval()


@pytest.fixture
def tiny_dermx() -> DermXStyleNet:
    return make_tiny_dermx()


@pytest.fixture
def tiny_images() -> Tensor:
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="session")
def resnet18() -> nn.Module:
    return make_timm("resnet18")


@pytest.fixture(scope="session")
def efficientnet_b0() -> nn.Module:
    return make_timm("efficientnet_b0")


@pytest.fixture(scope="session")
def images96() -> Tensor:
    return torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(2))
