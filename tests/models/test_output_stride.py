"""The map grid as a model option: timm's output stride through presets, build_model, checkpoints,
the CAM engine (parity with pytorch-grad-cam on a dilated backbone) and the guided-attention loss."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from dermx.explain import CamEngine, explain, find_layer
from dermx.models import build_model, load_checkpoint, save_checkpoint
from dermx.models.presets import PRESETS
from explain.conftest import randomize_batch_norms

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize(("stride", "grid"), [(32, (2, 2)), (16, (4, 4)), (8, (8, 8))])
def test_grid_follows_the_output_stride(stride: int, grid: tuple[int, int]) -> None:
    model = build_model("cpu", input_size=(64, 64), output_stride=stride)
    assert model.config.output_stride == stride
    assert model.map_grid() == grid
    features = CamEngine(model, "gradcam", model.config.cam_layer, size="features")(torch.randn(2, 3, 64, 64))
    assert features.maps.shape == (2, 22, *grid)


@pytest.mark.slow
def test_preset_table_in_the_docstring_matches_measured_grids() -> None:
    """The presets module states each preset's grid at its input size: measure every one."""
    import dermx.models.presets as presets

    rows = [line.split("|")[1:-1] for line in (presets.__doc__ or "").splitlines() if line.startswith("| ")]
    table = {cells[0].strip(): cells for cells in rows[1:]}
    assert set(table) == set(PRESETS)
    for name, preset in PRESETS.items():
        cells = [c.strip() for c in table[name]]
        model = build_model(name)
        h, w = model.map_grid()
        assert cells[1].split()[0] == preset.backbone and int(cells[3]) == preset.output_stride
        assert cells[4] == f"{h} × {w}", name


def test_preset_stride_and_arguments_apply_to_its_own_backbone_only() -> None:
    tiny = build_model("tiny")
    assert tiny.config.output_stride == 8 and tiny.config.backbone_args == {"channels": (32, 64, 128, 256)}
    assert tiny.backbone.num_features == 256
    other = build_model("tiny", backbone="resnet18")
    assert other.config.output_stride == 32 and other.config.backbone_args == {}
    assert build_model(backbone="resnet10t").config.output_stride == 32


def test_backbone_arguments_survive_a_checkpoint(tmp_path: Path) -> None:
    model = build_model("tiny").eval()
    directory = save_checkpoint(model, tmp_path / "tiny")
    assert json.loads((directory / "config.json").read_text())["backbone_args"] == {"channels": [32, 64, 128, 256]}
    reloaded = load_checkpoint(directory)
    assert reloaded.config.backbone_args == model.config.backbone_args and reloaded.map_grid() == (8, 8)


def test_an_argument_the_architecture_does_not_take_is_a_clear_error() -> None:
    from dermx.models.dermx_net import DermXNet, ModelConfig

    with pytest.raises(ValueError, match="cannot be built with no_such_option=3"):
        DermXNet(ModelConfig(backbone="resnet10t", backbone_args={"no_such_option": 3}))


def test_bad_strides_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="output stride must be one of"):
        build_model("cpu", output_stride=4)
    with pytest.raises(ValueError, match="cannot be built with output_stride=8"):
        build_model(backbone="vit_tiny_patch16_224", output_stride=8, input_size=(224, 224))


def test_checkpoint_records_and_restores_the_stride(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("cpu", input_size=(64, 64), output_stride=16).eval()
    directory = save_checkpoint(model, tmp_path / "ckpt")
    assert json.loads((directory / "config.json").read_text())["output_stride"] == 16
    reloaded = load_checkpoint(directory)
    assert reloaded.config.output_stride == 16 and reloaded.map_grid() == (4, 4)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(images)["diagnosis"], model(images)["diagnosis"])


def test_checkpoint_without_a_recorded_stride_loads_as_32(tmp_path: Path) -> None:
    model = build_model("small", input_size=(64, 64))
    directory = save_checkpoint(model, tmp_path / "old")
    document = json.loads((directory / "config.json").read_text())
    del document["output_stride"]
    (directory / "config.json").write_text(json.dumps(document))
    assert load_checkpoint(directory).config.output_stride == 32


@pytest.mark.slow
@pytest.mark.parametrize("layer", ["layer4", "layer4.1.conv2"])
def test_gradcam_on_a_dilated_backbone_matches_pytorch_grad_cam(layer: str) -> None:
    """ResNet-18 at output stride 8 (dilated layer3/layer4): 8 × 8 grid at 64 px; both routes."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, output_stride=8).eval()
    randomize_batch_norms(model, 0)
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    targets = [3, 17, 512]
    ours = explain(model, images, targets=targets, method="gradcam", layer=layer)
    with GradCAM(model=model, target_layers=[find_layer(model, layer)]) as cam:
        expected = np.stack([cam(images, [ClassifierOutputTarget(t)] * len(images)) for t in targets], axis=1)
    grid = explain(model, images, targets=targets, method="gradcam", layer=layer, size="features").maps
    assert grid.shape[-2:] == (8, 8)
    assert (ours.maps.amax(dim=(-2, -1)) > 0.99).float().mean() > 0.5  # non-trivial maps
    np.testing.assert_allclose(ours.maps.numpy(), expected, atol=1e-4, rtol=0)


def test_a_training_run_takes_a_finer_cam_layer(tmp_path: Path) -> None:
    """``--cam-layer``: the map grid of a run can also come from an earlier stage (stride 4 in layer1)."""
    from dermx.train import TrainConfig
    from dermx.train.fitting import model_from_config

    preset = TrainConfig.of(kind="dermx+", preset="tiny", input_size=(64, 64), pretrained=False)
    assert model_from_config(preset).map_grid() == (8, 8)  # the preset's: layer4 at output stride 8
    config = preset.replace(cam_layer="backbone.layer1")
    model = model_from_config(config)
    assert model.config.cam_layer == "backbone.layer1" and model.map_grid() == (16, 16)
    reloaded = load_checkpoint(save_checkpoint(model, tmp_path / "ckpt"))
    assert reloaded.config.cam_layer == "backbone.layer1" and reloaded.map_grid() == (16, 16)
    with pytest.raises(ValueError, match="not a module"):
        model_from_config(config.replace(cam_layer="backbone.layer9"))
