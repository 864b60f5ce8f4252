"""The gradient routes agree with each other and with the one-target loop; create_graph works."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from torch import Tensor, nn

from dermx.explain import CamEngine, explain
from explain.dermx_style import make_tiny_dermx

RAW = {"normalize": False, "relu": False, "size": "features"}


def assert_routes_agree(
    model: nn.Module, images: Tensor, layer: str | None, routes: list[str], targets: object
) -> None:
    for method in ("gradcam", "hirescam"):  # spatially averaged and element-wise use of the gradients
        reference = explain(model, images, targets, method=method, layer=layer, route="loop", **RAW).maps
        for route in routes:
            maps = explain(model, images, targets, method=method, layer=layer, route=route, **RAW).maps
            torch.testing.assert_close(maps, reference, atol=1e-5, rtol=1e-5, msg=f"{method} {route}")


def test_linear_head_routes_agree(resnet18: nn.Module, images96: Tensor) -> None:
    assert_routes_agree(resnet18, images96, None, ["auto", "linear", "jacobian", "batched"], [0, 3, 999])


def test_mlp_head_routes_agree(tiny_dermx: nn.Module, tiny_images: Tensor) -> None:
    assert_routes_agree(tiny_dermx, tiny_images, None, ["auto", "jacobian", "batched"], None)


def test_inner_layer_routes_agree(tiny_dermx: nn.Module, tiny_images: Tensor) -> None:
    assert_routes_agree(tiny_dermx, tiny_images, "backbone.stage.0", ["auto", "batched"], None)


@pytest.mark.parametrize(
    ("model_name", "layer", "expected"),
    [("resnet18", None, "linear"), ("tiny", None, "jacobian"), ("tiny", "backbone.stage.1", "batched")],
)
def test_auto_picks_fastest_exact_route(
    model_name: str, layer: str | None, expected: str, resnet18: nn.Module, tiny_dermx: nn.Module
) -> None:
    model = resnet18 if model_name == "resnet18" else tiny_dermx
    assert explain(model, torch.randn(2, 3, 64, 64), [0, 1], layer=layer).route == expected


def test_plain_torchvision_classifier_takes_batched_route() -> None:
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18(weights=None).eval()
    images = torch.randn(2, 3, 64, 64)
    result = explain(model, images, [5, 9])
    assert (result.route, result.layer, result.maps.shape) == ("batched", "layer4.1", (2, 2, 64, 64))
    loop = explain(model, images, [5, 9], route="loop").maps
    torch.testing.assert_close(result.maps, loop, atol=1e-5, rtol=0)


def test_active_dropout_is_not_mistaken_for_a_linear_head() -> None:
    import timm

    model = timm.create_model("resnet18", pretrained=False, drop_rate=0.5).train()
    assert explain(model, torch.randn(2, 3, 64, 64), [0]).route == "jacobian"
    with pytest.raises(ValueError, match="linear"):
        explain(model, torch.randn(2, 3, 64, 64), [0], route="linear")


def test_linear_route_is_the_class_activation_map(resnet18: nn.Module, images96: Tensor) -> None:
    """CAM = Σ_k W_ck A_k on the backbone output; Grad-CAM is the same map divided by h·w."""
    targets = [2, 11]
    features = resnet18.forward_features(images96).detach()
    expected = torch.einsum("tk,bkhw->bthw", resnet18.get_classifier().weight[targets].detach(), features)
    cam = explain(resnet18, images96, targets, method="cam", **RAW)
    gradcam = explain(resnet18, images96, targets, method="gradcam", **RAW)
    torch.testing.assert_close(cam.maps, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gradcam.maps * features.shape[-2] * features.shape[-1], expected, atol=1e-5, rtol=1e-5)


def test_cam_needs_a_pooled_layer(tiny_dermx: nn.Module, tiny_images: Tensor) -> None:
    with pytest.raises(ValueError, match="global average pooling"):
        explain(tiny_dermx, tiny_images, method="cam", layer="backbone.stage.0")
    with pytest.raises(ValueError, match="route 'jacobian' needs"):
        explain(tiny_dermx, tiny_images, layer="backbone.stage.0", route="jacobian")


def attention_loss_gradients(model: nn.Module, images: Tensor, layer: str | None, route: str) -> dict[str, Tensor]:
    """Gradients of a DermX+-like loss on the maps (and the logits of the same pass) w.r.t. parameters."""
    result = CamEngine(model, layer=layer, route=route, create_graph=True, size=(12, 12))(images)
    assert result.maps.requires_grad
    loss = (result.maps - 0.5).square().mean() + result.logits["diagnosis"].logsumexp(dim=1).mean()
    names, params = zip(*model.named_parameters(), strict=True)
    return dict(zip(names, torch.autograd.grad(loss, params), strict=True))


@pytest.mark.parametrize(("layer", "route"), [(None, "auto"), (None, "batched"), ("backbone.stage.0", "batched")])
def test_create_graph_gradients_match_the_loop(layer: str | None, route: str, tiny_images: Tensor) -> None:
    """Train mode as in DermX+ training (dropout off so that both passes see the same network)."""
    model = make_tiny_dermx(dropout=0.0).train()
    fast = attention_loss_gradients(model, tiny_images, layer, route)
    loop = attention_loss_gradients(model, tiny_images, layer, "loop")
    assert fast["backbone.stem.0.weight"].abs().sum() > 0
    assert fast["characteristic_head.1.weight"].abs().sum() > 0
    for name, grad in fast.items():
        torch.testing.assert_close(grad, loop[name], atol=1e-5, rtol=1e-4, msg=name)


@contextmanager
def parameter_as_input(module: nn.Module, name: str, value: Tensor) -> Iterator[None]:
    """Temporarily replace a parameter by a plain tensor, so that it can be a gradcheck input."""
    original = module._parameters.pop(name)
    setattr(module, name, value)
    try:
        yield
    finally:
        delattr(module, name)
        module._parameters[name] = original


def test_create_graph_passes_gradcheck() -> None:
    model = make_tiny_dermx(dropout=0.0).double()
    images = torch.randn(2, 3, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    conv = model.backbone.stem[0]
    engine = CamEngine(model, create_graph=True, normalize=False, relu=False, size="features")

    def maps_of(weight: Tensor) -> Tensor:
        with parameter_as_input(conv, "weight", weight):
            return engine(images, [("characteristic", "Plaque"), ("diagnosis", "Psoriasis")]).maps

    weight = conv.weight.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(maps_of, (weight,), fast_mode=True)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "hirescam", "cam", "eigencam"])
@pytest.mark.parametrize("size", ["features", "input"])
def test_maps_from_the_pooled_layer_alone_equal_the_full_pass(tiny_dermx: nn.Module, tiny_images: Tensor,
                                                              method: str, size: str) -> None:
    """explain_pooled(A) (the head on GAP(A), no backbone) gives the maps and logits of the images A came from;
    a backbone that is never called proves no image is read."""
    engine = CamEngine(tiny_dermx, method, size=size)  # type: ignore[arg-type]
    full = engine(tiny_images)
    assert full.activations is not None and full.activations.shape[:2] == (3, 16)
    calls: list[object] = []
    hook = tiny_dermx.backbone.register_forward_hook(lambda *_: calls.append(1))
    try:
        pooled = engine.explain_pooled(full.activations, (32, 32))
    finally:
        hook.remove()
    assert calls == [] and pooled.labels == full.labels and pooled.route == full.route
    torch.testing.assert_close(pooled.maps, full.maps, atol=1e-6, rtol=1e-5)
    assert isinstance(pooled.logits, dict) and isinstance(full.logits, dict)
    for head, logits in full.logits.items():
        torch.testing.assert_close(pooled.logits[head], logits)


def test_maps_from_the_pooled_layer_need_that_layer(tiny_dermx: nn.Module, tiny_images: Tensor) -> None:
    inner = CamEngine(tiny_dermx, layer="backbone.stage.0")
    assert inner(tiny_images).activations is None  # not what the head pools: nothing to recompute from
    with pytest.raises(ValueError, match="call the engine on images first"):
        CamEngine(tiny_dermx).explain_pooled(torch.zeros(1, 16, 8, 8), (32, 32))
    with pytest.raises(ValueError, match="scores masked images"):
        CamEngine(tiny_dermx, "scorecam").explain_pooled(torch.zeros(1, 16, 8, 8), (32, 32))
    engine = CamEngine(tiny_dermx)
    engine(tiny_images)
    with pytest.raises(ValueError, match=r"\(batch, channels, h, w\) tensor, got \(8, 4\)"):
        engine.explain_pooled(torch.zeros(8, 4), (32, 32))
