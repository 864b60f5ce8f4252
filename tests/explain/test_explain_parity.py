"""Parity with pytorch-grad-cam (used only as a test oracle).

pytorch-grad-cam applies ReLU, min-max normalises each map at the feature grid (ε = 1e-7), resizes it
to the input with OpenCV (bilinear, half-pixel centres) and min-max normalises again. The engine's
default post-processing is the same (see ``dermx.explain.maps``), so its output is compared with
pytorch-grad-cam's final output directly, at the input size, with no extra post-processing.
pytorch-grad-cam explains one target per call, so the oracle loops over the targets.

Two deliberate departures from pytorch-grad-cam, handled in the oracle rather than hidden by a tolerance:

- Grad-CAM++: the engine evaluates the paper's coefficient exactly, pytorch-grad-cam adds ε = 1e-6 to
  its denominator 2G² + Σ A·G³. The oracle therefore runs on a copy of the model whose logits are
  scaled by :data:`GRADCAMPP_LOGIT_SCALE`, so that 2G² ≫ 1e-6 and its ε is negligible; the coefficient
  itself is tested against the paper's formula in ``test_explain_hardening.py``.
- Eigen-CAM: a principal component's sign is arbitrary; the oracle orients pytorch-grad-cam's
  projection with the engine's documented rule (positive correlation with the channel sum).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection
from torch import Tensor, nn

from dermx.explain import explain, find_layer

pytestmark = pytest.mark.slow  # end-to-end runs: `make test`, not `make test-fast`


class OrientedEigenCAM(EigenCAM):
    """pytorch-grad-cam's Eigen-CAM, its projection's sign set by the engine's rule: the map correlates
    positively with the activations summed over channels (see ``dermx.explain.methods.eigencam``)."""

    def get_cam_image(self, input_tensor: Tensor, target_layer: nn.Module, target_category: object,
                      activations: np.ndarray, grads: np.ndarray, eigen_smooth: bool) -> np.ndarray:
        projection = get_2d_projection(activations)
        channel_sum = activations.sum(axis=1)
        centred = channel_sum - channel_sum.mean(axis=(-2, -1), keepdims=True)
        flip = (projection * centred).sum(axis=(-2, -1)) < 0
        return np.where(flip[:, None, None], -projection, projection)


ORACLES = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "hirescam": HiResCAM,
    "layercam": LayerCAM,
    "eigencam": OrientedEigenCAM,
    "scorecam": ScoreCAM,
}
#: Logit scale of the Grad-CAM++ comparison (module docstring): gradients 1e5 times larger make
#: pytorch-grad-cam's absolute ε = 1e-6 negligible against 2G² (at 1e3 it still moves inner-layer maps by 2.5e-4).
GRADCAMPP_LOGIT_SCALE = 1e5
TARGETS = (1, 7, 42)
GRADIENT_METHODS = ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam")
POOLED = {"resnet18": "layer4.1", "efficientnet_b0": "bn2"}
#: Input sizes (crops of the same images): EfficientNet's backward pass is the slow one on CPU.
SIZES = {"resnet18": 96, "efficientnet_b0": 64}
#: (architecture, layer, method): every method at the backbone output of both architectures (pooled
#: routes), the gradient methods at inner layers (batched route; spatially varying gradients).
CASES = [
    *((arch, layer, method) for arch, layer in POOLED.items() for method in (*GRADIENT_METHODS, "eigencam")),
    *(("resnet18", "layer4.1.conv2", method) for method in GRADIENT_METHODS),
    *(("efficientnet_b0", "blocks.5.0", method) for method in ("gradcam", "hirescam")),
]


def scaled_logits(model: nn.Module, factor: float) -> nn.Module:
    """A copy of a timm classifier whose logits are ``factor`` times the original's."""
    scaled = copy.deepcopy(model)
    classifier = scaled.get_classifier()
    with torch.no_grad():
        classifier.weight.mul_(factor)
        classifier.bias.mul_(factor)
    return scaled


def oracle_maps(method: str, model: nn.Module, layer: str, images: Tensor, targets: tuple[int, ...],
                **options: object) -> np.ndarray:
    with ORACLES[method](model=model, target_layers=[find_layer(model, layer)], **options) as cam:
        if method == "scorecam":
            cam.batch_size = 64
        per_target = [cam(images, [ClassifierOutputTarget(t)] * len(images)) for t in targets]
    return np.stack(per_target, axis=1)


@pytest.mark.parametrize(("arch", "layer", "method"), CASES)
def test_matches_pytorch_grad_cam(
    arch: str, layer: str, method: str, images96: Tensor, request: pytest.FixtureRequest
) -> None:
    """Float32, except XGrad-CAM: its weights Σ_ij G A / (Σ_ij A + ε) are ill-conditioned where a
    channel's signed activations (EfficientNet's SiLU) nearly cancel, and pytorch-grad-cam's float32
    sum of products then differs from the exact value by up to ~2e-3; in float64 both agree."""
    model, images = request.getfixturevalue(arch), images96[..., : SIZES[arch], : SIZES[arch]]
    if method == "xgradcam":  # float64 convolutions are slow: a 64 px crop keeps this cheap
        model, images = copy.deepcopy(model).double(), images96[..., :64, :64].double()
    if method == "gradcam++":
        model = scaled_logits(model, GRADCAMPP_LOGIT_SCALE)
    ours = explain(model, images, targets=list(TARGETS), method=method, layer=layer)
    expected = oracle_maps(method, model, layer, images, TARGETS)
    assert ours.maps.shape == (len(images), len(TARGETS), *images.shape[-2:])
    assert ours.route == ("none" if method == "eigencam" else "linear" if layer == POOLED[arch] else "batched")
    np.testing.assert_allclose(ours.maps.numpy(), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize(("method", "create_graph"), [("gradcam", False), ("gradcam", True), ("eigencam", False)])
def test_layer_the_model_overwrites_in_place(method: str, create_graph: bool, resnet18: nn.Module,
                                             images96: Tensor) -> None:
    """timm's BasicBlock adds the shortcut into ``bn2``'s output in place (``x += shortcut``), then applies
    an in-place ReLU: the maps are ``bn2``'s own, through both gradient paths (``create_graph`` False:
    graph from the layer on; True: the DermX+ training path, differentiable). pytorch-grad-cam keeps a
    reference to the overwritten tensor; its ``reshape_transform``, applied when the layer runs,
    snapshots it with a clone, which makes it the oracle here."""
    layer = "layer4.1.bn2"
    ours = explain(resnet18, images96, targets=list(TARGETS), method=method, layer=layer, create_graph=create_graph)
    expected = oracle_maps(method, resnet18, layer, images96, TARGETS, reshape_transform=torch.clone)
    assert ours.route == ("none" if method == "eigencam" else "batched")
    np.testing.assert_allclose(ours.maps.detach().numpy(), expected, atol=1e-4, rtol=0)
    overwritten = oracle_maps(method, resnet18, layer, images96, TARGETS)
    assert np.abs(overwritten - expected).max() > 0.1  # the in-place write matters: the check is not vacuous
    if create_graph:
        (grad,) = torch.autograd.grad(ours.maps.sum(), resnet18.layer4[1].bn2.weight)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize(("arch", "layer"), [("resnet18", "layer1"), ("efficientnet_b0", "blocks.1")])
def test_scorecam_matches_pytorch_grad_cam(arch: str, layer: str, request: pytest.FixtureRequest) -> None:
    """Score-CAM at an early layer (64 / 24 channels) and 48 px keeps the oracle's K·T forwards cheap."""
    model = request.getfixturevalue(arch)
    images = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(3))
    targets = (1, 7)
    ours = explain(model, images, targets=list(targets), method="scorecam", layer=layer)
    expected = oracle_maps("scorecam", model, layer, images, targets)
    np.testing.assert_allclose(ours.maps.numpy(), expected, atol=1e-4, rtol=0)


def test_oracle_maps_are_not_trivial(resnet18: nn.Module, images96: Tensor) -> None:
    """Guard against vacuous parity: the compared maps have structure (not all zero or constant)."""
    maps = explain(resnet18, images96, targets=list(TARGETS), layer="layer4.1.conv2").maps
    assert (maps.amax(dim=(-2, -1)) > 0.99).float().mean() > 0.5
