from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from dermx.models import CheckpointError, build_model, load_checkpoint, save_checkpoint

pytestmark = pytest.mark.slow  # end-to-end runs: `make test`, not `make test-fast`

RELOAD = """
import sys, torch
from dermx.models import load_checkpoint
model = load_checkpoint(sys.argv[1])
images = torch.load(sys.argv[2])
with torch.no_grad():
    torch.save(model(images), sys.argv[3])
"""


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = build_model("small", kind="dermx", characteristics="paper", input_size=(64, 64), pretrained=False)
    model.config.training_data = {"sha256": "abc", "n_train": 3}
    return save_checkpoint(model, tmp_path / "ckpt"), model.eval()


def test_reloaded_in_a_new_process_gives_identical_outputs(saved: tuple[Path, torch.nn.Module],
                                                           tmp_path: Path) -> None:
    directory, model = saved
    images = torch.randn(2, 3, 64, 64)
    torch.save(images, tmp_path / "x.pt")
    subprocess.run([sys.executable, "-c", RELOAD, str(directory), str(tmp_path / "x.pt"), str(tmp_path / "y.pt")],
                   check=True, env={"HF_HUB_OFFLINE": "1", "PATH": ""})
    reloaded = torch.load(tmp_path / "y.pt")
    with torch.no_grad():
        expected = model(images)
    assert list(reloaded) == ["characteristic", "diagnosis"]
    for head in expected:
        torch.testing.assert_close(reloaded[head], expected[head], atol=0, rtol=0)


def test_config_describes_the_model(saved: tuple[Path, torch.nn.Module]) -> None:
    directory, model = saved
    config = json.loads((directory / "config.json").read_text())
    assert config["backbone"] == "resnet18" and config["kind"] == "dermx" and config["preset"] == "small"
    assert config["characteristics"] == list(model.config.characteristics)
    assert config["input_size"] == [64, 64] and config["cam_layer"] == "backbone.layer4"
    assert config["training_data"]["sha256"] == "abc" and "dermx_version" in config
    reloaded = load_checkpoint(directory / "model.safetensors")
    assert not reloaded.training and reloaded.config == model.config


def _edit(directory: Path, **changes: object) -> None:
    config = json.loads((directory / "config.json").read_text())
    config.update(changes)
    (directory / "config.json").write_text(json.dumps(config))


def test_mismatched_names_and_shapes_give_clear_errors(saved: tuple[Path, torch.nn.Module]) -> None:
    directory, _ = saved
    _edit(directory, characteristics=["Papule", "Plaque"])
    with pytest.raises(CheckpointError, match=r"characteristic_head.4.weight.*file has shape \(10, 64\)"):
        load_checkpoint(directory)
    _edit(directory, characteristics=["Papule", "Eczema"])
    with pytest.raises(CheckpointError, match=r"unknown characteristic name.*Eczema"):
        load_checkpoint(directory)
    _edit(directory, diagnoses=["Vitiligo", "Acne", "Actinic keratosis", "Psoriasis", "Seborrheic dermatitis",
                                "Viral warts"])
    with pytest.raises(CheckpointError, match="order matters"):
        load_checkpoint(directory)


def test_missing_tensors_and_files_are_reported(saved: tuple[Path, torch.nn.Module], tmp_path: Path) -> None:
    directory, _ = saved
    state = load_file(str(directory / "model.safetensors"))
    del state["diagnosis_out.bias"]
    save_file(state, str(directory / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing tensor .diagnosis_out\.bias."):
        load_checkpoint(directory)
    with pytest.raises(CheckpointError, match=r"config\.json and model\.safetensors"):
        load_checkpoint(tmp_path / "nothing")


def test_resolution_policy_is_recorded_and_validated(saved: tuple[Path, torch.nn.Module]) -> None:
    directory, model = saved
    assert json.loads((directory / "config.json").read_text())["resolution"] == "pad"
    model.config.resolution = "crop"
    assert load_checkpoint(save_checkpoint(model, directory)).config.resolution == "crop"
    config = json.loads((directory / "config.json").read_text())
    del config["resolution"]  # a checkpoint written before the policy was recorded
    (directory / "config.json").write_text(json.dumps(config))
    assert load_checkpoint(directory).config.resolution == "pad"
    _edit(directory, resolution="stretch")
    with pytest.raises(CheckpointError, match=r"unknown resolution policy 'stretch'"):
        load_checkpoint(directory)


@pytest.mark.parametrize("cut", [0, 5, 0.5])
def test_empty_or_truncated_weights_are_a_checkpoint_error(saved: tuple[Path, torch.nn.Module],
                                                            cut: float) -> None:
    directory, _ = saved
    weights = directory / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: int(cut * len(data)) if isinstance(cut, float) else cut])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors file") as caught:
        load_checkpoint(directory)
    assert "\n" not in str(caught.value) and str(weights) in str(caught.value)
