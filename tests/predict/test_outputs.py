"""``dermx predict`` outputs: one folder per input (two inputs with one stem), the JSON naming each
input's folder, a decompression bomb in a folder as one skipped file, pictures drawn at a bounded size
with the maps at full size only when asked, and long names shortened in messages."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from dermx.cli import app
from dermx.explain.outputs import read_placement
from predict.samples import photo

pytestmark = pytest.mark.slow  # end-to-end runs: `make test`, not `make test-fast`


def predict(checkpoint: Path, *args: str) -> tuple[int, str, dict]:
    out = Path(args[args.index("--out") + 1]) if "--out" in args else None
    result = CliRunner().invoke(app, ["predict", "-m", str(checkpoint), *args])
    written = out / "predictions.json" if out else None
    document = json.loads(written.read_text()) if written and written.is_file() else {}
    return result.exit_code, result.output, document


def test_two_inputs_with_one_stem_get_two_folders(checkpoint: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    photo(seed=1).save(images / "lesion.jpg")
    photo(seed=2).save(images / "lesion.png")
    photo(seed=3).save(images / "other.png")
    code, output, document = predict(checkpoint, str(images), "--out", str(tmp_path / "out"))
    assert code == 0, output
    folders = {Path(p["source"]).name: Path(p["folder"]) for p in document["predictions"]}
    assert folders == {"lesion.jpg": tmp_path / "out" / "lesion.jpg", "lesion.png": tmp_path / "out" / "lesion.png",
                       "other.png": tmp_path / "out" / "other"}
    for prediction in document["predictions"]:
        folder = Path(prediction["folder"])
        assert all(Path(f).parent == folder and Path(f).is_file() for f in prediction["files"])
        with np.load(folder / "maps.npz") as saved:
            assert list(saved["targets"]) == prediction["maps"]


def test_the_same_name_in_two_folders_and_a_reserved_name(checkpoint: Path, tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        photo(seed=4).save(tmp_path / folder / "x.jpg")
    photo(seed=5).save(tmp_path / "predictions.json.png")  # its stem is the name of the JSON file
    code, output, document = predict(checkpoint, str(tmp_path / "a" / "x.jpg"), str(tmp_path / "b" / "x.jpg"),
                                     str(tmp_path / "predictions.json.png"), "--out", str(tmp_path / "out"))
    assert code == 0, output
    names = [Path(p["folder"]).name for p in document["predictions"]]
    assert names == ["x.jpg", "x.jpg-2", "predictions.json.png"]


def bomb_png(side: int = 40000) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_a_decompression_bomb_in_a_folder_is_one_skipped_file(checkpoint: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    photo(seed=1).save(images / "a.jpg")
    (images / "bomb.png").write_bytes(bomb_png())
    photo(seed=2).save(images / "c.jpg")
    result = CliRunner().invoke(app, ["predict", "-m", str(checkpoint), str(images), "--json"])
    assert result.exit_code == 1 and (result.exception is None or isinstance(result.exception, SystemExit))
    document = json.loads(result.stdout)
    assert [Path(p["source"]).name for p in document["predictions"]] == ["a.jpg", "c.jpg"]
    (skipped,) = document["skipped"]
    assert Path(skipped["file"]).name == "bomb.png" and skipped["reason"].startswith("image has too many pixels")
    assert "Traceback" not in result.output


def test_pictures_are_drawn_at_a_bounded_size_and_full_size_maps_only_when_asked(checkpoint: Path,
                                                                                   tmp_path: Path) -> None:
    path = tmp_path / "large.jpg"
    photo(1200, 800, seed=6).save(path)
    out = tmp_path / "out"
    code, output, document = predict(checkpoint, str(path), "--out", str(out), "--figure-size", "300")
    assert code == 0, output
    (prediction,) = document["predictions"]
    pictures = [Path(f) for f in prediction["files"] if f.endswith(".png")]
    for picture in pictures:
        with Image.open(picture) as drawn:  # two panels of 300 px and the margins, not of 1200 px
            assert 600 < drawn.width < 800 and 200 < drawn.height < 400, drawn.size
    with np.load(out / "large" / "maps.npz") as saved:
        assert "native_maps" not in saved.files
    code, output, document = predict(checkpoint, str(path), "--out", str(tmp_path / "native"), "--native-maps")
    assert code == 0, output
    with np.load(tmp_path / "native" / "large" / "maps.npz") as saved:
        native = saved["native_maps"]
        assert native.shape == (len(saved["targets"]), 800, 1200) and native.dtype == np.float16
        expected = read_placement(saved).restore(torch.from_numpy(saved["maps"])).numpy()
        assert np.abs(native.astype(np.float32) - expected).max() < 1e-3


def test_a_long_missing_name_is_shortened(checkpoint: Path, tmp_path: Path) -> None:
    name = str(tmp_path / ("n" * 5000))
    result = CliRunner().invoke(app, ["predict", "-m", str(checkpoint), name])
    assert result.exit_code == 2 and len(result.output) < 1000, len(result.output)
    assert "no such file or folder" in result.output and f"({len(name):,} characters)" in result.output
