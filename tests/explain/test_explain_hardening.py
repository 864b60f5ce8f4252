"""Edge cases of the CAM engine found by an independent parity check (Captum, torch-cam, Quantus,
scikit-learn): layers overwritten in place, bad pixels and targets, degenerate grids, Grad-CAM++'s
coefficient, Eigen-CAM's sign and scale-free min-max normalisation."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from torch import Tensor, nn

from dermx.explain import explain, find_layer
from dermx.explain.maps import minmax
from dermx.explain.methods import CamInputs, gradcam_plus_plus


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


# --- input checks --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_pixels_raise_naming_the_batch_index(bad: float, tiny_dermx: nn.Module,
                                                        tiny_images: Tensor) -> None:
    images = tiny_images.clone()
    images[1, 2, 5, 7] = bad
    images[2, 0, 0, 0] = bad
    with pytest.raises(ValueError, match=r"batch index \[1, 2\] contain NaN or infinite"):
        explain(tiny_dermx, images)


def test_integer_valued_targets_of_any_type(tiny_dermx: nn.Module, tiny_images: Tensor) -> None:
    expected = explain(tiny_dermx, tiny_images, [1, 17]).maps
    for targets in ([1.0, 17.0], [np.int64(1), np.float32(17)], [1.0, ("diagnosis", 1.0)]):
        torch.testing.assert_close(explain(tiny_dermx, tiny_images, targets).maps, expected)
    torch.testing.assert_close(explain(tiny_dermx, tiny_images, 1.0).maps, expected[:, :1])
    for bad in (1.5, [2.5], float("nan")):
        with pytest.raises(ValueError, match="is not an integer index"):
            explain(tiny_dermx, tiny_images, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="is not an index, a name or a"):
        explain(tiny_dermx, tiny_images, [True])


def test_one_by_one_grid_warns(resnet18: nn.Module) -> None:
    with pytest.warns(RuntimeWarning, match="1x1 feature grid for 16x16 images"):
        maps = explain(resnet18, torch.randn(1, 3, 16, 16), [1]).maps
    assert (maps == 0).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explain(resnet18, torch.randn(1, 3, 64, 64), [1])


# --- Grad-CAM++: the paper's coefficient, no absolute ε ---------------------------------------------


def paper_gradcam_plus_plus(a: Tensor, g: Tensor) -> Tensor:
    """Chattopadhay et al. 2018, eq. 19, literally: a = G² / (2G² + Σ_ab A_ab G³) (0 where G = 0),
    α_k = Σ_ij a ReLU(G), map = Σ_k α_k A_k; float64."""
    a, g = a.double(), g.double()
    total = a.sum(dim=(-2, -1))[:, None, :, None, None]
    g2 = g.pow(2)
    coefficient = torch.where(g != 0, g2 / (2 * g2 + total * g2 * g), 0)
    return torch.einsum("btk,bkhw->bthw", (coefficient * g.clamp(min=0)).sum(dim=(-2, -1)), a)


@pytest.mark.parametrize("scale", [1e-5, 1e-3, 1.0])
def test_gradcam_plus_plus_is_the_papers_formula_on_small_gradients(scale: float) -> None:
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(2, 5, 4, 4, generator=generator)
    g = torch.randn(2, 3, 5, 4, 4, generator=generator) * scale
    g[g.abs() < 0.3 * scale] = 0  # exact zeros, as below a ReLU
    ours = gradcam_plus_plus(CamInputs(activations=a, n_targets=3, gradients=g))
    torch.testing.assert_close(ours.double(), paper_gradcam_plus_plus(a, g), rtol=1e-5, atol=0)


def test_gradcam_plus_plus_with_pooled_gradients_equals_the_full_grid() -> None:
    """Gradients of a layer feeding global average pooling arrive as a 1×1 grid; same coefficient."""
    generator = torch.Generator().manual_seed(1)
    a = torch.rand(2, 5, 3, 3, generator=generator)
    g = torch.randn(1, 4, 5, 1, 1, generator=generator) * 1e-4
    pooled = gradcam_plus_plus(CamInputs(activations=a, n_targets=4, gradients=g))
    full = gradcam_plus_plus(CamInputs(activations=a, n_targets=4, gradients=g.expand(2, 4, 5, 3, 3)))
    torch.testing.assert_close(pooled, full)
    torch.testing.assert_close(pooled.double(), paper_gradcam_plus_plus(a, g.expand(2, 4, 5, 3, 3)), rtol=1e-5,
                               atol=0)


def test_gradcam_plus_plus_guards_only_exact_zeros_of_the_denominator() -> None:
    """G Σ A = −2 zeroes the paper's denominator (a positive gradient on a channel of negative total
    activation): coefficient 0 there, the exact value elsewhere, and finite gradients through it
    (create_graph training). An ε = 1e-6 turned the singular point into a coefficient of 250000."""
    a = -torch.tensor([[[[1.0, 1.0], [0.5, 1.5]]]])  # Σ A = −4
    g = torch.tensor([[[[[0.5, 0.25], [0.0, 1.0]]]]], requires_grad=True)  # 0.5 · (−4) = −2
    raw = gradcam_plus_plus(CamInputs(activations=a, n_targets=1, gradients=g))
    # coefficients 1 / (2 − 4G): 0 (singular), 1, 0 (G = 0), −1/2; α = 1 · 0.25 − 1/2 · 1 = −0.25
    torch.testing.assert_close(raw, -0.25 * a)
    (grad,) = torch.autograd.grad(raw.sum(), g)
    assert torch.isfinite(grad).all()


# --- Eigen-CAM: the first principal component, oriented ---------------------------------------------


@pytest.mark.parametrize(("arch", "layer", "sklearn_agrees"),
                         [("resnet18", "layer3.1", True), ("efficientnet_b0", "bn2", False)])
def test_eigencam_is_scikit_learns_first_principal_component(arch: str, layer: str, sklearn_agrees: bool,
                                                            request: pytest.FixtureRequest) -> None:
    """|map| is sklearn's PCA projection; its sign makes the map correlate positively with the channel
    sum. On post-ReLU activations (ResNet) that is sklearn's own sign (LAPACK's was the opposite on
    all 6 images); on signed SiLU activations (EfficientNet) sklearn's rule, largest loading
    positive, gives the opposite orientation on these images."""
    model = request.getfixturevalue(arch)
    images = torch.randn(6, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    raw = explain(model, images, [0, 3], method="eigencam", layer=layer, relu=False, normalize=False,
                  size="features").maps
    torch.testing.assert_close(raw[:, 0], raw[:, 1])
    for projection, activations in zip(raw[:, 0], layer_activations(model, layer, images), strict=True):
        x = activations.flatten(1).T.double().numpy()
        expected = PCA(n_components=1).fit_transform(x)[:, 0]
        channel_sum = x.sum(axis=1)
        oriented = expected if np.dot(expected, channel_sum - channel_sum.mean()) >= 0 else -expected
        np.testing.assert_allclose(projection.flatten().numpy(), oriented, atol=1e-4 * np.abs(expected).max(), rtol=0)
        assert np.corrcoef(projection.flatten().numpy(), channel_sum)[0, 1] > 0.5
        assert np.array_equal(oriented, expected) == sklearn_agrees


# --- min-max normalisation: scale-free --------------------------------------------------------------


def test_minmax_is_scale_free_and_constant_maps_stay_zero() -> None:
    generator = torch.Generator().manual_seed(3)
    maps = torch.rand(2, 3, 5, 5, generator=generator)
    for scale in (1e-9, 1e-6, 1.0, 1e6):
        torch.testing.assert_close(minmax(maps * scale, 1e-7), minmax(maps, 1e-7))
    assert (minmax(maps * 1e-6, 1e-7).amax(dim=(-2, -1)) == 1).all()
    constants = torch.stack([torch.zeros(5, 5), torch.full((5, 5), 3e-7), torch.full((5, 5), -2.0)])[None]
    assert torch.equal(minmax(constants, 1e-7), torch.zeros_like(constants))
    noisy = 1 + 1e-9 * torch.rand(1, 1, 5, 5, generator=generator, dtype=torch.float64)
    assert minmax(noisy, 1e-7).max() < 0.02  # rounding noise on a constant is not blown up to [0, 1]


def test_feature_maps_with_a_tiny_range_peak_at_one(resnet18: nn.Module, images96: Tensor) -> None:
    """``size="features"`` (the DermX+ training path) has one min-max pass: with an absolute ε, maps
    spanning ~1e-6 peaked at 0.8–0.9."""
    tiny = copy.deepcopy(resnet18)
    raw = explain(tiny, images96, [1, 7, 42], size="features", normalize=False).maps
    with torch.no_grad():
        tiny.get_classifier().weight.mul_(1e-6 / raw.max().item())
        tiny.get_classifier().bias.zero_()
    raw = explain(tiny, images96, [1, 7, 42], size="features", normalize=False).maps
    assert raw.amax(dim=(-2, -1)).max() <= 1.01e-6
    for create_graph in (False, True):
        maps = explain(tiny, images96, [1, 7, 42], size="features", create_graph=create_graph).maps
        torch.testing.assert_close(maps.amax(dim=(-2, -1)), torch.ones(2, 3), rtol=0, atol=1e-6)
