"""Engine behaviour: targets, options, defaults, hygiene (hooks, model state), errors, baselines."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import torch
from torch import Tensor, nn

from dermx.explain import CamEngine, baseline_like, default_layer_name, explain, gaussian_maps, random_maps
from dermx.vocab import CHARACTERISTICS, DIAGNOSES


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               + len(m._backward_pre_hooks) for m in model.modules())


def live_tensors() -> int:
    gc.collect()
    return sum(issubclass(type(obj), Tensor) for obj in gc.get_objects())


def test_default_targets_are_every_output_of_every_head(tiny_dermx: nn.Module, tiny_images: Tensor) -> None:
    result = explain(tiny_dermx, tiny_images)
    assert result.maps.shape == (3, 22, 32, 32)
    assert result.labels[0] == "characteristic:Closed comedo"
    assert result.labels[16:] == tuple(f"diagnosis:{d}" for d in DIAGNOSES)
    expected = tiny_dermx(tiny_images)
    assert list(result.logits) == ["characteristic", "diagnosis"]
    torch.testing.assert_close(result.logits["diagnosis"], expected["diagnosis"])


def test_targets_by_name_head_pair_index_and_head(tiny_dermx: nn.Module, tiny_images: Tensor) -> None:
    everything = explain(tiny_dermx, tiny_images)
    result = explain(tiny_dermx, tiny_images, [("diagnosis", "Psoriasis"), "Plaque", 0, ("characteristic", 3)])
    assert result.labels == ("diagnosis:Psoriasis", "characteristic:Plaque", "characteristic:Closed comedo",
                             f"characteristic:{CHARACTERISTICS[3]}")
    columns = [16 + DIAGNOSES.index("Psoriasis"), CHARACTERISTICS.index("Plaque"), 0, 3]
    torch.testing.assert_close(result.maps, everything.maps[:, columns])
    assert explain(tiny_dermx, tiny_images, "diagnosis").labels == tuple(f"diagnosis:{d}" for d in DIAGNOSES)


def test_plain_classifier_with_class_names(resnet18: nn.Module) -> None:
    names = [f"class {i}" for i in range(1000)]
    result = explain(resnet18, torch.randn(2, 3, 64, 64), ["class 7", 8], class_names=names)
    assert result.labels == ("class 7", "class 8")
    assert isinstance(result.logits, Tensor) and result.logits.shape == (2, 1000)


def test_map_options(tiny_dermx: nn.Module, tiny_images: Tensor) -> None:
    assert explain(tiny_dermx, tiny_images, [0], size="features").maps.shape == (3, 1, 8, 8)
    assert explain(tiny_dermx, tiny_images, [0], size=(20, 24)).maps.shape == (3, 1, 20, 24)
    maps = explain(tiny_dermx, tiny_images, [0, 1]).maps
    peaks = maps.amax(dim=(-2, -1))  # 1, or 0 where ReLU removed the whole map
    assert maps.min() >= 0 and ((peaks - 1).abs() < 1e-5).logical_or(peaks == 0).all() and peaks.sum() >= 4
    raw = explain(tiny_dermx, tiny_images, normalize=False, relu=False, size="features").maps
    assert raw.min() < 0 and raw.max() > 0
    nearest = explain(tiny_dermx, tiny_images, normalize=False, relu=False, interpolation="nearest").maps
    torch.testing.assert_close(nearest[..., ::4, ::4], raw)


def test_zero_absent_only_for_the_named_heads(tiny_dermx: nn.Module, tiny_images: Tensor) -> None:
    plain = explain(tiny_dermx, tiny_images)
    zeroed = explain(tiny_dermx, tiny_images, zero_absent={"characteristic"})
    absent = plain.logits["characteristic"] < 0
    assert absent.any() and (~absent).any()
    assert (zeroed.maps[:, :16][absent] == 0).all()
    torch.testing.assert_close(zeroed.maps[:, :16][~absent], plain.maps[:, :16][~absent])
    torch.testing.assert_close(zeroed.maps[:, 16:], plain.maps[:, 16:])
    every = explain(tiny_dermx, tiny_images, zero_absent=True)
    assert (every.maps[:, 16:][plain.logits["diagnosis"] < 0] == 0).all()


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam", "scorecam"])
def test_every_method_runs_on_the_multi_head_model(method: str, tiny_dermx: nn.Module, tiny_images: Tensor) -> None:
    result = explain(tiny_dermx, tiny_images, ["Plaque", ("diagnosis", 0)], method=method)
    assert result.maps.shape == (3, 2, 32, 32) and torch.isfinite(result.maps).all()
    assert result.maps.min() >= 0 and result.maps.max() <= 1


def test_default_layers(resnet18: nn.Module, efficientnet_b0: nn.Module, tiny_dermx: nn.Module) -> None:
    from torchvision.models import resnet18 as tv_resnet18

    example = torch.randn(1, 3, 32, 32)
    assert default_layer_name(resnet18, example) == "layer4.1"
    assert default_layer_name(efficientnet_b0, example) == "bn2"
    assert default_layer_name(tv_resnet18(weights=None), example) == "layer4.1"
    assert default_layer_name(tiny_dermx, example) == "backbone.stage"  # last 4-D map, found on meta
    assert all(p.device.type == "cpu" for p in tiny_dermx.parameters())
    tiny_dermx.config = SimpleNamespace(cam_layer="backbone.stem")
    assert explain(tiny_dermx, example, [0]).layer == "backbone.stem"


def test_layer_by_module_and_bracket_path(resnet18: nn.Module) -> None:
    images = torch.randn(1, 3, 64, 64)
    by_module = explain(resnet18, images, [1], layer=resnet18.layer3[-1])
    by_path = explain(resnet18, images, [1], layer="layer3[-1]")
    assert by_module.layer == by_path.layer == "layer3.1"
    torch.testing.assert_close(by_module.maps, by_path.maps)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread avoids pointless synchronisation on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_hooks_removed_and_memory_flat_over_1000_calls(tiny_dermx: nn.Module) -> None:
    images = torch.randn(1, 3, 8, 8)
    engine = CamEngine(tiny_dermx, size="features")
    for _ in range(20):
        engine(images, [0, 16])
    before = live_tensors()
    for _ in range(1000):
        engine(images, [0, 16])
    assert hook_count(tiny_dermx) == 0
    assert live_tensors() <= before


def test_hooks_removed_after_an_error(tiny_dermx: nn.Module, tiny_images: Tensor) -> None:
    with pytest.raises(ValueError, match="unknown target"):
        explain(tiny_dermx, tiny_images, ["Not a characteristic"])
    assert hook_count(tiny_dermx) == 0


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("create_graph", [False, True])
def test_model_state_unchanged(training: bool, create_graph: bool, tiny_dermx: nn.Module, tiny_images: Tensor) -> None:
    model = tiny_dermx.train(training)
    model.backbone.stem.requires_grad_(False)
    flags = {name: (p.requires_grad, p.grad) for name, p in model.named_parameters()}
    modes = {name: m.training for name, m in model.named_modules()}
    params = {name: p.detach().clone() for name, p in model.named_parameters()}
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    with torch.no_grad():
        result = explain(model, tiny_images, method="gradcam", create_graph=create_graph)
    assert result.maps.requires_grad == create_graph
    assert flags == {name: (p.requires_grad, p.grad) for name, p in model.named_parameters()}
    assert modes == {name: m.training for name, m in model.named_modules()}
    assert all(torch.equal(p, params[name]) for name, p in model.named_parameters())
    if not training:  # in train mode batch norm updates its running statistics, as any forward pass does
        assert all(torch.equal(b, buffers[name]) for name, b in model.named_buffers())
    assert hook_count(model) == 0


def test_frozen_model_and_no_grad_caller(tiny_dermx: nn.Module, tiny_images: Tensor) -> None:
    expected = explain(tiny_dermx, tiny_images)
    tiny_dermx.requires_grad_(False)
    with torch.no_grad():
        result = explain(tiny_dermx, tiny_images)
    torch.testing.assert_close(result.maps, expected.maps)
    assert not any(p.requires_grad for p in tiny_dermx.parameters())


@pytest.mark.parametrize(
    ("images", "options", "targets", "message"),
    [
        (torch.randn(3, 32, 32), {}, None, "4-D"),
        (torch.randn(2, 1, 32, 32), {}, None, "1 channels but .* expects 3"),
        (torch.randn(0, 3, 32, 32), {}, None, "empty batch"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), {}, None, "floating-point"),
        ([[0.0]], {}, None, "torch.Tensor"),
        (torch.randn(1, 3, 32, 32), {}, ["Plaquee"], "unknown target 'Plaquee'"),
        (torch.randn(1, 3, 32, 32), {}, [("diagnosis", "Plaque")], "unknown target 'Plaque' in head 'diagnosis'"),
        (torch.randn(1, 3, 32, 32), {}, [("histology", 0)], "unknown head 'histology'"),
        (torch.randn(1, 3, 32, 32), {}, [22], "out of range"),
        (torch.randn(1, 3, 32, 32), {}, [], "no targets"),
        (torch.randn(1, 3, 32, 32), {"layer": "backbone.layer9"}, None, "'layer9'"),
        (torch.randn(1, 3, 32, 32), {"layer": "backbone.stage.7"}, None, "out of range"),
        (torch.randn(1, 3, 32, 32), {"method": "gradcam+++"}, None, "unknown CAM method"),
        (torch.randn(1, 3, 32, 32), {"route": "fast"}, None, "unknown route"),
        (torch.randn(1, 3, 32, 32), {"route": "linear"}, None, "linear classifier"),
        (torch.randn(1, 3, 32, 32), {"method": "eigencam", "create_graph": True}, None, "gradient method"),
        (torch.randn(1, 3, 32, 32), {"size": (0, 4)}, None, "size must be"),
        (torch.randn(1, 3, 32, 32), {"layer": "characteristic_head.1"}, None, "must output a"),
    ],
)
def test_bad_input_raises_a_clear_value_error(
    images: object, options: dict, targets: object, message: str, tiny_dermx: nn.Module
) -> None:
    with pytest.raises(ValueError, match=message):
        explain(tiny_dermx, images, targets, **options)  # type: ignore[arg-type]


def test_scorecam_refuses_train_mode(tiny_dermx: nn.Module, tiny_images: Tensor) -> None:
    with pytest.raises(ValueError, match="eval mode"):
        explain(tiny_dermx.train(), tiny_images, method="scorecam")


def test_baselines() -> None:
    gaussian = gaussian_maps(2, 3, (9, 9), sigma=0.2)
    assert gaussian.shape == (2, 3, 9, 9) and gaussian[0, 0, 4, 4] == gaussian.max()
    assert gaussian.min() >= 0 and gaussian.max() <= 1
    first, again = random_maps(1, 2, (8, 8), seed=5), random_maps(1, 2, (8, 8), seed=5)
    assert torch.equal(first, again) and not torch.equal(first, random_maps(1, 2, (8, 8), seed=6))
    smooth = random_maps(1, 1, (28, 28), seed=0, grid=(7, 7))
    assert smooth.shape == (1, 1, 28, 28) and smooth.min() >= 0 and smooth.max() <= 1
    like = torch.zeros(2, 4, 5, 6)
    for kind in ("uniform", "gaussian", "random"):
        assert baseline_like(kind, like).shape == like.shape
    assert (baseline_like("uniform", like) == 1).all()
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_like("zeros", like)  # type: ignore[arg-type]


@pytest.mark.parametrize("layer", [None, "backbone.stem"])
def test_explain_methods_equals_one_engine_per_method(layer: str | None, tiny_dermx: nn.Module,
                                                      tiny_images: Tensor) -> None:
    tiny_dermx.eval()
    methods = ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam", "scorecam"]
    if layer is None:
        methods.append("cam")  # needs the layer that feeds global average pooling
    engine = CamEngine(tiny_dermx, "gradcam", layer, zero_absent={"characteristic"}, score_batch_size=7)
    together = engine.explain_methods(tiny_images, methods)
    assert list(together) == methods
    for method in methods:
        alone = CamEngine(tiny_dermx, method, layer, zero_absent={"characteristic"}, score_batch_size=7)(tiny_images)
        assert torch.allclose(together[method].maps, alone.maps, atol=1e-6), method
        assert together[method].route == alone.route
        assert together[method].labels == alone.labels
    with pytest.raises(ValueError, match="no methods"):
        engine.explain_methods(tiny_images, [])
    with pytest.raises(ValueError, match="unknown CAM method 'nope'"):
        engine.explain_methods(tiny_images, ["gradcam", "nope"])
    if layer is not None:
        with pytest.raises(ValueError, match="'cam' needs the target layer"):
            engine.explain_methods(tiny_images, ["gradcam", "cam"])
