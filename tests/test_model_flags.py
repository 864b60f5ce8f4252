"""Issue 25: ``--model`` means one thing in ``explain``, ``predict`` and ``serve`` (a dermx checkpoint, or a
timm model name with ``--weights FILE``), and a flag with no effect in the given combination is a usage
error naming the flag and why, never silently ignored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import timm
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from dermx.cli import app
from predict.samples import encoded, photo, tiny_checkpoint
from support import plain

CLASSES = ("eczema", "psoriasis vulgaris", "tinea", "acne")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("checkpoint"))


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 4-class resnet18 weight file written here, and a class-name file."""
    folder = tmp_path_factory.mktemp("classifier")
    torch.manual_seed(1)
    model = timm.create_model("resnet18", pretrained=False, num_classes=len(CLASSES))
    torch.save(model.state_dict(), folder / "mine.pth")
    (folder / "names.txt").write_text("\n".join(CLASSES) + "\n")
    return folder / "mine.pth", folder / "names.txt"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    photo(seed=3).save(folder / "lesion.jpg")
    return folder


def _usage_error(result: Any, flag: str, *why: str) -> None:
    text = plain(result.output)
    assert result.exit_code == 2, result.output
    assert f"'{flag}'" in text and all(w in text for w in why), text


@pytest.mark.slow
@pytest.mark.parametrize(("flag", "value"), [("--weights", "mine.pth"), ("--n-classes", "4"),
                                             ("--class-names", "names.txt"), ("--top-k", "2")])
def test_explain_refuses_a_flag_a_dermx_checkpoint_ignores(checkpoint: Path, classifier: tuple[Path, Path],
                                                           images: Path, tmp_path: Path, flag: str, value: str) -> None:
    """Old code: each of these was accepted and had no effect on a dermx checkpoint."""
    value = str(classifier[0].parent / value) if value.endswith((".pth", ".txt")) else value
    result = CliRunner().invoke(app, ["explain", "--model", str(checkpoint), "--images", str(images),
                                      "--out", str(tmp_path / "maps"), flag, value])
    _usage_error(result, flag, "dermx checkpoint")
    assert not (tmp_path / "maps").exists()


def test_explain_refuses_top_k_beside_targets(classifier: tuple[Path, Path], images: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["explain", "--model", "resnet18", "--weights", str(classifier[0]),
                                      "--images", str(images), "--out", str(tmp_path / "maps"), "--targets", "1",
                                      "--top-k", "2"])
    _usage_error(result, "--top-k", "without --targets")


@pytest.mark.parametrize("command", ["predict", "serve"])
def test_predict_and_serve_refuse_classifier_flags_on_a_checkpoint(command: str, checkpoint: Path, images: Path,
                                                                   classifier: tuple[Path, Path]) -> None:
    extra = [str(images)] if command == "predict" else []
    result = CliRunner().invoke(app, [command, "--model", str(checkpoint), "--weights", str(classifier[0]), *extra])
    _usage_error(result, "--weights", "dermx checkpoint")


@pytest.mark.parametrize("command", ["predict", "serve"])
def test_a_timm_name_without_weights_is_refused(command: str, images: Path) -> None:
    """Old code: 'no such checkpoint' (predict and serve took only dermx checkpoints)."""
    extra = [str(images)] if command == "predict" else []
    result = CliRunner().invoke(app, [command, "--model", "resnet18", *extra])
    _usage_error(result, "--model", "--weights")


@pytest.mark.slow
def test_predict_a_timm_classifier_with_its_weights(classifier: tuple[Path, Path], images: Path,
                                                    tmp_path: Path) -> None:
    weights, names = classifier
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["predict", "--model", "resnet18", "--weights", str(weights),
                                      "--class-names", str(names), str(images), "--out", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads((out / "predictions.json").read_text())
    (prediction,) = document["predictions"]
    ranked = [d["name"] for d in prediction["diagnoses"]]
    assert sorted(ranked) == sorted(CLASSES) and prediction["characteristics"] == []
    assert prediction["maps"] == [f"diagnosis:{ranked[0]}"]
    model = timm.create_model("resnet18", pretrained=False, num_classes=len(CLASSES))
    model.load_state_dict(torch.load(weights))
    from PIL import Image

    from dermx.geometry import joint_transform, preprocess

    config = timm.data.resolve_data_config({}, model=model)
    size = tuple(config["input_size"][1:])
    with Image.open(images / "lesion.jpg") as image:
        tensor, _ = preprocess(image.convert("RGB"), size, joint_transform(size, config["mean"], config["std"],
                                                                           augment=False), "squash")
    with torch.no_grad():
        expected = model.eval()(tensor[None]).softmax(1)[0]
    assert ranked[0] == CLASSES[int(expected.argmax())]
    assert prediction["diagnoses"][0]["probability"] == pytest.approx(float(expected.max()), abs=1e-5)
    info = document["model"]
    assert info["kind"] == "dx-only" and info["backbone"] == "resnet18" and info["resolution"] == "squash"
    assert info["checkpoint"]["name"] == "mine.pth" and len(info["checkpoint"]["sha256"]) == 64
    saved = np.load(out / "lesion" / "maps.npz")
    assert saved["maps"].shape[0] == 1 and float(saved["maps"].max()) == pytest.approx(1.0)


def test_serve_a_timm_classifier_with_its_weights(classifier: tuple[Path, Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda service, **options: served.append(service))
    weights, names = classifier
    result = CliRunner().invoke(app, ["serve", "--model", "resnet18", "--weights", str(weights),
                                      "--class-names", str(names)])
    assert result.exit_code == 0, result.output
    with TestClient(served[0]) as client:
        assert client.get("/v1/model").json()["diagnoses"] == list(CLASSES)
        answer = client.post("/v1/predict", files={"file": ("a.png", encoded(photo(), "PNG"), "image/png")})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["characteristics"] == [] and len(body["overlays"]) == 1 and body["diagnosis"] in CLASSES


@pytest.mark.slow
def test_predictions_json_keeps_a_count_and_fingerprint_of_the_training_images(tmp_path: Path, images: Path) -> None:
    """Old code: every predictions.json embedded the whole list of training image keys."""
    from dermx.models import build_model, save_checkpoint

    model = build_model("small", kind="dx-only", pretrained=False, input_size=(64, 64))
    keys = [f"img{i:04d}" for i in range(300)]
    model.config.training_data = {"source": "mine", "sha256": "ab" * 8, "images": keys, "n_train": 250, "n_val": 50}
    checkpoint = save_checkpoint(model, tmp_path / "ckpt")
    result = CliRunner().invoke(app, ["predict", "--model", str(checkpoint), str(images), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "o" / "predictions.json").read_text()
    record = json.loads(text)["model"]["training_data"]
    assert "img0123" not in text
    assert record["images"]["count"] == 300 and len(record["images"]["sha256"]) == 16
    assert (record["source"], record["n_train"], record["n_val"]) == ("mine", 250, 50)


@pytest.mark.parametrize("command", ["predict", "serve"])
def test_a_threshold_for_a_classifier_without_characteristics_is_refused(command: str, images: Path,
                                                                         classifier: tuple[Path, Path]) -> None:
    extra = [str(images)] if command == "predict" else []
    result = CliRunner().invoke(app, [command, "--model", "resnet18", "--weights", str(classifier[0]),
                                      "--threshold", "0.3", *extra])
    _usage_error(result, "--threshold", "characteristics")
