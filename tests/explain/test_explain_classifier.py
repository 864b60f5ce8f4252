"""``dermx explain`` on a user's fine-tuned 6-class timm classifier (issue 14): the class count follows
the weight file, the default target is each image's predicted class, class names come from the
checkpoint or a text file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import typer
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from dermx import vocab
from dermx.explain.cli import register
from dermx.explain.images import load_input
from dermx.explain.overlay import target_filename
from dermx.geometry import InputSpec


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    return app


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("classifier")
    folder = root / "images"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(rng.integers(0, 256, (48, 56, 3), dtype=np.uint8)).save(folder / name)
    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=6)
    with torch.no_grad():  # spread the logits so every image has a clear top class
        model.fc.weight.mul_(50)
    torch.save({"state_dict": model.state_dict(), "class_names": list(vocab.DIAGNOSES), "epoch": 9},
               root / "my_6class.pth")
    save_file(model.state_dict(), str(root / "plain.safetensors"))
    names = root / "names.txt"
    names.write_text("\n".join(["eczema", "melanoma", "psoriasis", "acne", "warts", "vitiligo"]) + "\n")
    return {"images": folder, "weights": root / "my_6class.pth", "plain": root / "plain.safetensors",
            "names": names, "root": root}


def _reference_logits(weights: Path, image: Path) -> torch.Tensor:
    """Logits computed without dermx's loader: timm model with 6 outputs, the state dict loaded strictly."""
    model = timm.create_model("resnet18", pretrained=False, num_classes=6).eval()
    model.load_state_dict(torch.load(weights, weights_only=True)["state_dict"])
    config = timm.data.resolve_data_config({}, model=model)
    with torch.no_grad():
        spec = InputSpec((64, 64), tuple(config["mean"]), tuple(config["std"]), "squash")
        return model(spec.normalise([load_input(image, spec.size, spec.policy)]))[0]


def _explain(app: typer.Typer, setup: dict[str, Path], out: Path, *args: str):
    return CliRunner().invoke(app, ["explain", "--model", "resnet18", "--images", str(setup["images"]),
                                    "--out", str(out), "--input-size", "64", *args])


@pytest.mark.slow
def test_a_fine_tuned_classifier_explains_its_predicted_class(app: typer.Typer, setup: dict[str, Path],
                                                               tmp_path: Path) -> None:
    """Old code: size-mismatch traceback for the 6-output fc layer, then 'needs --targets'."""
    result = _explain(app, setup, tmp_path / "out", "--weights", str(setup["weights"]))
    assert result.exit_code == 0, result.output
    for name in ("a", "b", "c"):
        saved = np.load(tmp_path / "out" / name / "maps.npz")
        logits = _reference_logits(setup["weights"], setup["images"] / f"{name}.png")
        assert saved["maps"].shape == (1, 64, 64)
        assert list(saved["targets"]) == [vocab.DIAGNOSES[int(logits.argmax())]]
        assert saved["logits"][0] == pytest.approx(float(logits.max()), rel=1e-4, abs=1e-4)
        assert saved["probabilities"][0] == pytest.approx(float(logits.softmax(0).max()), abs=1e-5)
        assert (tmp_path / "out" / name / target_filename(str(saved["targets"][0]))).is_file()


@pytest.mark.slow
def test_top_k_all_and_a_class_name_file(app: typer.Typer, setup: dict[str, Path], tmp_path: Path) -> None:
    result = _explain(app, setup, tmp_path / "top2", "--weights", str(setup["weights"]), "--top-k", "2",
                      "--class-names", str(setup["names"]))
    assert result.exit_code == 0, result.output
    saved = np.load(tmp_path / "top2" / "a" / "maps.npz")
    names = setup["names"].read_text().split()
    logits = _reference_logits(setup["weights"], setup["images"] / "a.png")
    assert list(saved["targets"]) == [names[i] for i in logits.topk(2).indices.tolist()]
    assert saved["logits"][0] >= saved["logits"][1]
    every = _explain(app, setup, tmp_path / "all", "--weights", str(setup["plain"]), "--targets", "all")
    assert every.exit_code == 0, every.output
    assert list(np.load(tmp_path / "all" / "b" / "maps.npz")["targets"]) == [str(i) for i in range(6)]


def test_a_wrong_class_count_names_the_file(app: typer.Typer, setup: dict[str, Path], tmp_path: Path) -> None:
    result = _explain(app, setup, tmp_path / "o", "--weights", str(setup["weights"]), "--n-classes", "5")
    text = re.sub(r"[\s│]+", " ", result.output)
    assert result.exit_code == 2 and "6 outputs" in text and "my_6class.pth" in text
    (setup["root"] / "five.txt").write_text("a\nb\nc\nd\ne\n")
    result = _explain(app, setup, tmp_path / "o", "--weights", str(setup["weights"]),
                      "--class-names", str(setup["root"] / "five.txt"))
    assert result.exit_code == 2 and "5 class names for a classifier with 6 outputs" in re.sub(
        r"[\s│]+", " ", result.output)
