"""``dermx predict``: folders, outputs, JSON, skipped files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from dermx.cli import app
from dermx.explain.outputs import MAPS_KEYS, read_placement
from dermx.explain.overlay import target_filename
from predict.samples import photo

pytestmark = pytest.mark.slow  # end-to-end runs: `make test`, not `make test-fast`


def test_folder_with_outputs_and_skipped_files(checkpoint: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    photo(seed=1).save(images / "a.jpg")
    photo(seed=2).convert("RGBA").save(images / "sub" / "b.png")
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (images / "notes.txt").write_text("hello")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["predict", "--model", str(checkpoint), str(images), "--out", str(out),
                                      "--batch-size", "2"])
    assert result.exit_code == 1, result.output
    document = json.loads((out / "predictions.json").read_text())
    assert [p["source"] for p in document["predictions"]] == [str(images / "a.jpg"), str(images / "sub" / "b.png")]
    assert sorted(Path(s["file"]).name for s in document["skipped"]) == ["broken.png", "notes.txt"]
    assert "2 image(s) predicted, 2 skipped" in result.output
    first = document["predictions"][0]
    maps = np.load(out / "a" / "maps.npz")
    assert set(maps.files) == set(MAPS_KEYS) and list(maps["targets"]) == first["maps"]
    assert read_placement(maps).restore(torch.from_numpy(maps["maps"])).shape == (len(first["maps"]), 72, 96)
    overlay = out / "a" / f"diagnosis_{first['diagnosis'].replace(' ', '_')}.png"
    assert sorted(p.name for p in (out / "a").iterdir()) == sorted(["maps.npz", *map(target_filename, first["maps"])])
    with Image.open(overlay) as picture:  # image and overlay side by side, each at least the image's size
        assert picture.width > 2 * 96 and picture.height > 72
    assert (out / "sub" / "b" / "maps.npz").is_file()


def test_json_on_stdout(checkpoint: Path, tmp_path: Path) -> None:
    path = tmp_path / "one.webp"
    photo().save(path)
    result = CliRunner().invoke(app, ["predict", "-m", str(checkpoint), str(path), "--json", "--threshold", "0.3"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["model"]["checkpoint"]["sha256"] and document["skipped"] == []
    (prediction,) = document["predictions"]
    assert prediction["threshold"] == 0.3 and len(prediction["diagnoses"]) == 6


def test_bad_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["predict", "-m", str(tmp_path), str(tmp_path)])
    assert result.exit_code == 1 and "config.json" in result.output  # 1: the command ran and failed


def test_truncated_weights_are_one_error_line(checkpoint: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_bytes((checkpoint / "config.json").read_bytes())
    data = (checkpoint / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    image = tmp_path / "a.png"
    photo().save(image)
    for command in (["predict", "-m", str(broken), str(image)], ["serve", "-m", str(broken), "--port", "0"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "model.safetensors: not a readable safetensors file" in result.output
        assert "Traceback" not in result.output


def test_predict_and_explain_write_one_layout_with_the_same_keys(checkpoint: Path, tmp_path: Path) -> None:
    """``OUT/<image stem>/<target>.png`` and one ``maps.npz`` with the keys of ``MAPS_KEYS``, from both commands;
    on the same image the maps of a target agree."""
    images = tmp_path / "images"
    images.mkdir()
    photo(seed=3).save(images / "lesion.jpg")
    runner = CliRunner()
    predicted = runner.invoke(app, ["predict", "--model", str(checkpoint), str(images), "--out", str(tmp_path / "p")])
    assert predicted.exit_code == 0, predicted.output
    explained = runner.invoke(app, ["explain", "--model", str(checkpoint), "--images", str(images),
                                    "--out", str(tmp_path / "e")])
    assert explained.exit_code == 0, explained.output
    folders = {name: sorted(p.relative_to(tmp_path / name) for p in (tmp_path / name).rglob("*") if p.is_file())
               for name in ("p", "e")}
    for name, files in folders.items():
        assert {p.parent for p in files if p.name != "predictions.json"} == {Path("lesion")}, name
        pictures = {p.name for p in files if p.suffix == ".png"}
        with np.load(tmp_path / name / "lesion" / "maps.npz") as saved:
            assert set(saved.files) == set(MAPS_KEYS), name
            assert pictures == {target_filename(t) for t in saved["targets"]}, name
            assert saved["maps"].shape[0] == len(saved["targets"]) == len(saved["logits"])
    with np.load(tmp_path / "p" / "lesion" / "maps.npz") as p, np.load(tmp_path / "e" / "lesion" / "maps.npz") as e:
        explained_maps = dict(zip(e["targets"], e["maps"], strict=True))
        for target, values in zip(p["targets"], p["maps"], strict=True):  # predict keeps a subset of explain's
            assert np.abs(explained_maps[target] - values).max() < 1e-3, target
        assert read_placement(p) == read_placement(e)
