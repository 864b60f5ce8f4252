"""Regression: from random weights, the presets' CAM layers give non-zero Grad-CAMs, so the DermX+
guided-attention loss has a gradient on the backbone from the first step (the old ``small`` CAM layer,
``layer4.1.conv2``, feeds a zero-initialised batch norm: all maps were 0 and the GA gradient was 0)."""

from __future__ import annotations

import pytest
import torch

from dermx.explain import CamEngine
from dermx.models import build_model
from dermx.train.losses import guided_attention_loss


@pytest.mark.parametrize("preset", ["small", "cpu"])
def test_guided_attention_has_a_gradient_at_initialisation(preset: str) -> None:
    torch.manual_seed(0)
    model = build_model(preset, kind="dermx+", pretrained=False, input_size=(64, 64)).train()
    images = torch.randn(4, 3, 64, 64)
    result = CamEngine(model, "gradcam", model.config.cam_layer, size="features", create_graph=True)(
        images, "characteristic")
    assert result.maps.amax(dim=(-2, -1)).gt(0).float().mean() > 0.5  # most maps alive
    targets = (torch.rand(4, 16, 64, 64) > 0.8).float()
    loss = guided_attention_loss(result.maps, targets, torch.ones(4, 16, dtype=torch.bool))
    grads = torch.autograd.grad(loss, [p for n, p in model.named_parameters() if n.startswith("backbone")],
                                allow_unused=True)
    norm = torch.sqrt(sum((g**2).sum() for g in grads if g is not None))
    assert norm > 1e-3
