"""``dermx explain`` through typer's CliRunner on a folder of images written by the test."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from dermx.cli_common import parse_input_size
from dermx.explain.cli import parse_targets, register
from dermx.explain.overlay import BOTTOM, TITLE


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # keeps "explain" a named sub-command
    return app


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("lesion a.jpg", "b.png", "c.jpeg"):
        Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.mark.slow
def test_explain_writes_maps_and_overlays(app: typer.Typer, image_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["explain", "--model", "resnet18", "--images", str(image_dir), "--out", str(out),
                                      "--targets", "3,7", "--input-size", "64", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "random weights" in result.output
    saved = np.load(out / "lesion a" / "maps.npz")
    assert saved["maps"].shape == (2, 64, 64) and list(saved["targets"]) == ["3", "7"]
    assert saved["maps"].min() >= 0 and saved["maps"].max() <= 1 and saved["logits"].shape == (2,)
    assert np.all((saved["probabilities"] > 0) & (saved["probabilities"] < 1))
    assert sorted(p.name for p in out.iterdir()) == ["b", "c", "lesion a"]
    assert sorted(p.name for p in (out / "b").iterdir()) == ["3.png", "7.png", "maps.npz"]
    with Image.open(out / "b" / "7.png") as png:  # squashed: the 70x50 original, upscaled x6, twice
        assert png.mode == "RGB" and png.height == TITLE + 50 * 6 + BOTTOM and png.width > 2 * 70 * 6


@pytest.mark.slow
@pytest.mark.parametrize("wrapped", [False, True])
def test_explain_loads_local_weights(app: typer.Typer, image_dir: Path, tmp_path: Path, wrapped: bool) -> None:
    import timm

    weights = tmp_path / "weights.pt"
    state = timm.create_model("resnet18", pretrained=False).state_dict()
    torch.save({"state_dict": state, "epoch": 3} if wrapped else state, weights)
    result = CliRunner().invoke(app, ["explain", "--model", "resnet18", "--images", str(image_dir),
                                      "--out", str(tmp_path / "out"), "--targets", "1", "--input-size", "64",
                                      "--weights", str(weights), "--method", "gradcam++"])
    assert result.exit_code == 0, result.output
    assert "random weights" not in result.output


def test_explain_names_a_weight_file_without_a_state_dict(app: typer.Typer, image_dir: Path, tmp_path: Path) -> None:
    weights = tmp_path / "weights.pt"
    torch.save({"epoch": 3}, weights)
    result = CliRunner().invoke(app, ["explain", "--model", "resnet18", "--images", str(image_dir),
                                      "--out", str(tmp_path / "out"), "--targets", "1", "--weights", str(weights)])
    assert result.exit_code == 2 and "no state dict found" in re.sub(r"[\s│]+", " ", result.output)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [(["--model", "no_such_model_xyz"], "neither a checkpoint file nor a timm model"),
     (["--model", "resnet18", "--targets", "1", "--layer", "layer9"], "layer9")],
)
def test_explain_reports_bad_arguments(
    arguments: list[str], message: str, app: typer.Typer, image_dir: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(app, ["explain", "--images", str(image_dir), "--out", str(tmp_path / "o"), *arguments])
    assert result.exit_code != 0
    assert message in re.sub(r"[\s│]+", " ", result.output)  # rich wraps errors in a box


def test_parsers() -> None:
    assert parse_targets("0, Plaque,diagnosis:Psoriasis,diagnosis:2") == [
        0, "Plaque", ("diagnosis", "Psoriasis"), ("diagnosis", 2)]
    assert parse_targets(None) is None
    assert parse_input_size("224") == (224, 224) and parse_input_size("256x192") == (256, 192)
    assert parse_input_size(None) is None
    for bad in ("big", "0", "3x0", "-2"):
        with pytest.raises(typer.BadParameter):
            parse_input_size(bad)


@pytest.mark.slow
def test_explain_a_dermx_checkpoint_with_its_own_preprocessing(app: typer.Typer, image_dir: Path,
                                                               tmp_path: Path) -> None:
    from dermx.explain.images import load_input
    from dermx.models import build_model, save_checkpoint

    torch.manual_seed(0)
    checkpoint = save_checkpoint(build_model("small", kind="dermx", input_size=(64, 64)), tmp_path / "ckpt")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["explain", "--model", str(checkpoint), "--images", str(image_dir),
                                      "--out", str(out), "--targets", "diagnosis:Acne,characteristic:Plaque"])
    assert result.exit_code == 0, result.output
    saved = np.load(out / "b" / "maps.npz")
    assert saved["maps"].shape == (2, 64, 64)
    assert list(saved["targets"]) == ["diagnosis:Acne", "characteristic:Plaque"]
    # the 70x50 image is padded, not squashed: letterbox rows above and below stay black
    pixels = load_input(image_dir / "b.png", (64, 64), "pad")
    assert pixels.shape == (64, 64, 3) and pixels[:9].max() == 0 and pixels[-9:].max() == 0
    assert pixels[20:44].max() > 0


def test_a_checkpoint_is_explained_with_its_own_resolution_policy(tmp_path: Path) -> None:
    from dermx.explain.cli import load_model
    from dermx.models import build_model, save_checkpoint

    model = build_model("small", kind="dermx", input_size=(64, 64))
    model.config.resolution = "crop"
    _, spec, _ = load_model(str(save_checkpoint(model, tmp_path / "ckpt")), None)
    assert spec.policy == "crop"


def test_two_images_with_one_stem_and_a_subfolder_get_their_own_folders(tmp_path: Path) -> None:
    """Old code: ``lesion.jpg`` and ``lesion.png`` both wrote ``OUT/lesion/`` (the second overwrote the
    first) and images in a subfolder were not found, against ``--images``'s meaning (searched recursively)."""
    from dermx.cli import app as dermx
    from dermx.models import build_model, save_checkpoint

    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 32), (200, 90, 80)).save(folder / "lesion.jpg")
    Image.new("RGB", (40, 32), (20, 190, 80)).save(folder / "lesion.png")
    Image.new("RGB", (40, 32), (90, 90, 200)).save(folder / "sub" / "deep.png")
    (folder / "notes.txt").write_text("not an image")
    checkpoint = save_checkpoint(build_model("tiny", pretrained=False, input_size=(32, 32)), tmp_path / "ckpt")
    out = tmp_path / "maps"
    result = CliRunner().invoke(dermx, ["explain", "--model", str(checkpoint), "--images", str(folder), "--out",
                                        str(out), "--targets", "diagnosis:Acne"])
    assert result.exit_code == 0, result.output
    assert {p.parent.relative_to(out).as_posix() for p in out.rglob("maps.npz")} == {"lesion.jpg", "lesion.png",
                                                                                      "sub/deep"}
    assert "notes.txt" in result.output and "passed over" in result.output
