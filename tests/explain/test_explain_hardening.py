"""Edge cases of the CAM engine found by an independent parity check (Captum, torch-cam, Quantus,
scikit-learn): layers overwritten in place, bad pixels and targets, degenerate grids, Grad-CAM++'s
coefficient, Eigen-CAM's sign and scale-free min-max normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from torch import Tensor, nn

from dermx.explain import explain, find_layer


def layer_activations(model: nn.Module, layer: str, images: Tensor) -> Tensor:
    """The layer's output as it was when the layer ran (a snapshot: later in-place ops cannot touch it)."""
    snapshots: list[Tensor] = []
    handle = find_layer(model, layer).register_forward_hook(lambda _m, _a, out: snapshots.append(out.clone()))
    with torch.no_grad():
        model(images)
    handle.remove()
    return snapshots[0]


# --- layers whose output the model overwrites in place -------------------------------------------------


class AliasNet(nn.Module):
    """A layer (``view``, an identity) that returns its own input, which the model then modifies in
    place through the layer's output (``mutate_output``) or through the input's name (``mutate_input``)."""

    def __init__(self, mutate: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.view = nn.Identity()
        self.fc = nn.Linear(4, 2)
        self.mutate = mutate

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        y = self.view(x)
        if self.mutate == "output":
            y.mul_(2)  # without hooks x is doubled as well: a copy of y would change x + y
        out = y * 3
        if self.mutate == "input":
            x.add_(1)  # overwrites y's memory after the layer ran
        return self.fc((out + x).mean(dim=(-2, -1)))


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize(("mutate", "message"), [("output", "returns \\(a view of\\) its own input"),
                                                  ("input", "modified the output of layer 'view' in place")])
def test_layer_overwritten_through_an_alias_raises(mutate: str, message: str, create_graph: bool) -> None:
    model = AliasNet(mutate).eval()
    with pytest.raises(ValueError, match=message):
        explain(model, torch.randn(2, 3, 8, 8), [0], layer="view", create_graph=create_graph)


def test_eigencam_at_a_layer_overwritten_in_place(resnet18: nn.Module, images96: Tensor) -> None:
    """No gradients involved: the activations themselves used to be the block's output (x += shortcut)."""
    layer = "layer4.1.bn2"
    raw = explain(resnet18, images96, [0], method="eigencam", layer=layer, relu=False, normalize=False,
                  size="features").maps[:, 0]
    for projection, activations in zip(raw, layer_activations(resnet18, layer, images96), strict=True):
        expected = PCA(n_components=1).fit_transform(activations.flatten(1).T.double().numpy())[:, 0]
        np.testing.assert_allclose(np.abs(projection.flatten().numpy()), np.abs(expected), atol=1e-4, rtol=0)
