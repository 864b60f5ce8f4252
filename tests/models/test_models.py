from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from dermx import vocab
from dermx.models import PRESETS, PretrainedUnavailableError, WeightsError, build_model, create_backbone, get_preset


@pytest.mark.parametrize("kind", ["dx-only", "dermx", "dermx+"])
def test_outputs_protocol_and_heads(kind: str) -> None:
    model = build_model("small", kind=kind, pretrained=False).eval()
    outputs = model(torch.randn(2, 3, 64, 64))
    heads = ["diagnosis"] if kind == "dx-only" else ["characteristic", "diagnosis"]
    assert list(outputs) == heads and list(model.target_names) == heads
    assert outputs["diagnosis"].shape == (2, 6)
    assert model.target_names["diagnosis"] == vocab.DIAGNOSES
    features = model.forward_features(torch.randn(2, 3, 64, 64))
    assert features.shape == (2, 512, 2, 2)
    images = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(model(images)["diagnosis"], model.forward_head(model.forward_features(images))[
        "diagnosis"])
    assert dict(model.named_modules())[model.config.cam_layer] is model.cam_module()


def test_probabilities_decode_both_heads() -> None:
    """softmax over the diagnosis logits, sigmoid per characteristic logit, (B, 0) without that head;
    half-precision logits (autocast) come back as float32."""
    z_dx, z_char = torch.randn(3, 6), torch.randn(3, 16)
    dx, char = build_model("small", pretrained=False).probabilities({"characteristic": z_char, "diagnosis": z_dx})
    torch.testing.assert_close(dx, torch.exp(z_dx) / torch.exp(z_dx).sum(dim=1, keepdim=True))
    torch.testing.assert_close(char, 1 / (1 + torch.exp(-z_char)))
    only = build_model("small", kind="dx-only", pretrained=False)
    dx, char = only.probabilities(only(torch.randn(2, 3, 64, 64)))
    assert dx.shape == (2, 6) and char.shape == (2, 0) and char.dtype == dx.dtype == torch.float32
    dx, char = only.probabilities({"diagnosis": z_dx.bfloat16(), "characteristic": z_char.half()})
    assert dx.dtype == char.dtype == torch.float32
    assert only.probabilities({"diagnosis": z_dx.double()}).diagnosis.dtype == torch.float64


def test_diagnosis_head_reads_the_characteristic_logits() -> None:
    model = build_model("small", kind="dermx", characteristics="paper", pretrained=False).eval()
    assert model.config.characteristics == vocab.PAPER_CHARACTERISTICS
    assert model.diagnosis_out.in_features == 64 + 10
    assert [type(m).__name__ for m in model.characteristic_head] == ["Dropout", "Linear", "ReLU", "Dropout",
                                                                     "Linear"]
    features = torch.randn(1, 512, 2, 2)
    base = model.forward_head(features)
    with torch.no_grad():
        model.characteristic_head[-1].bias += 1.0
    assert not torch.allclose(model.forward_head(features)["diagnosis"], base["diagnosis"])


def test_presets_carry_size_normalisation_and_cam_layer() -> None:
    assert get_preset("resnet50").cam_layer == "backbone.layer4.2.conv3"
    assert get_preset("resnet50").input_size == (256, 256)
    assert get_preset("efficientnet_b4").input_size == (380, 380)
    assert get_preset("efficientnet_b2").input_size == (260, 260)
    assert {"small", "resnet50", "efficientnet_b2", "efficientnet_b4"} <= set(PRESETS)
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("vgg")
    model = build_model(None, backbone="resnet10t", kind="dermx", pretrained=False)
    assert model.config.cam_layer.startswith("backbone.layer4")
    with pytest.raises(ValueError, match="Eczema"):
        build_model("small", characteristics=["Eczema"], pretrained=False)


@pytest.mark.parametrize(("preset", "backbone"), [(None, None), ("", None), (None, ""), ("", "")])
def test_a_model_needs_a_preset_or_a_backbone_name(preset: str | None, backbone: str | None) -> None:
    with pytest.raises(ValueError, match="give a preset or a timm backbone name"):
        build_model(preset, backbone=backbone, pretrained=False)


@pytest.mark.slow
def test_local_torchvision_weights_are_mapped_onto_timm(tmp_path: Path) -> None:
    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), tmp_path / "tv.pth")
    backbone = create_backbone("resnet18", weights=tmp_path / "tv.pth")
    torch.testing.assert_close(backbone.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, tmp_path / "w.ckpt")
    wrapped = create_backbone("resnet18", weights=tmp_path / "w.ckpt")
    torch.testing.assert_close(wrapped.conv1.weight, reference.conv1.weight)


@pytest.mark.slow
def test_safetensors_weights_and_positional_mapping(tmp_path: Path) -> None:
    source = create_backbone("resnet18")
    renamed = {f"stage_{i:03d}": v for i, v in enumerate(source.state_dict().values())}
    save_file(renamed, str(tmp_path / "r.safetensors"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = create_backbone("resnet18", weights=tmp_path / "r.safetensors")
    assert any("by position" in str(w.message) for w in caught)
    torch.testing.assert_close(loaded.conv1.weight, source.conv1.weight)
    model = build_model("small", weights=tmp_path / "r.safetensors")
    torch.testing.assert_close(model.backbone.layer3[0].conv1.weight, source.layer3[0].conv1.weight)


@pytest.mark.slow
def test_weights_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    torch.save(torchvision.models.resnet34().state_dict(), tmp_path / "r34.pth")
    with pytest.raises(WeightsError, match="unexpected key"):
        create_backbone("resnet18", weights=tmp_path / "r34.pth")
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    with pytest.raises(WeightsError, match="missing key"):
        create_backbone("resnet34", weights=tmp_path / "r18.pth")
    with pytest.raises(WeightsError, match="does not exist"):
        create_backbone("resnet18", weights=tmp_path / "absent.pth")


def test_pretrained_offline_fails_unless_the_random_fallback_is_asked_for(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    with pytest.raises(PretrainedUnavailableError, match=r"offline mode.*--no-pretrained.*--backbone-weights"):
        create_backbone("resnet18", pretrained=True)
    with pytest.warns(UserWarning, match="RANDOM initialisation"):
        assert create_backbone("resnet18", pretrained=True, random_fallback=True).weight_source == {"source": "random"}
