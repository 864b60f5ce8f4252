"""The DermXDB reader on small folders written by the tests, including every kind of bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from dermx.cli import app
from dermx.data import DermXDBError, Pass, fuse, load_dermxdb, load_rgb, resize_mask
from support import complex_polygon, plain, polygon, ring_mask

STEM_A = "img (1) a"  # spaces and parentheses, as in a few release stems
STEM_B = "IMG_B"  # an underscore: the stem is split at the first "_" only
SQUARE = [(2, 2), (20, 2), (20, 20), (2, 20)]
OUTER = [(5, 5), (35, 5), (35, 25), (5, 25)]
HOLE = [(10, 10), (20, 10), (20, 20), (10, 20)]


def build(writer) -> None:
    writer.annotation("labeller1", STEM_A, [
        {"name": "Psoriasis", "tag": {}},
        {"name": "Plaque", **polygon(SQUARE), "attributes": ["Hyper-pigmented", "Red"]},
        {"name": "Plaque", **polygon([(25, 5), (35, 5), (35, 15)])},
        {"name": "Scale", **complex_polygon([OUTER, HOLE])},
        {"name": "Light skin", "tag": {}},
    ])
    writer.annotation("labeller2", STEM_A, [
        {"name": "Psoriasis", "tag": {}}, {"name": "Acne", "tag": {}},
        {"name": "Plaque", **polygon([(4, 4), (22, 4), (22, 22), (4, 22)])},
    ])
    writer.annotation("labeller3", STEM_A, [{"name": "Other-disease", "tag": {}}, {"name": "Low-quality", "tag": {}}])
    writer.annotation("labeller12", STEM_A, [{"name": "Psoriasis", "tag": {}}, {"name": "Plaque", **polygon(SQUARE)}])
    writer.annotation("labeller1", STEM_B, [])
    writer.annotation("labeller2", STEM_B, [{"name": "Vitiligo", "tag": {}}, {"name": "Patch", **polygon(OUTER)}])
    writer.annotation("labeller1", "nometa", [{"name": "Acne", "tag": {}}])
    writer.metadata([(STEM_A, "Psoriasis"), (STEM_B, "Vitiligo")])
    writer.folds([([(STEM_A, "Psoriasis", 0)], [(STEM_B, "Vitiligo", 1)]),
                  ([(STEM_B, "Vitiligo", 1)], [(STEM_A, "Psoriasis", 0)])])
    # a leftover instance mask, as in the release: ignored and counted
    writer.mask("labeller1", STEM_A, "00000", np.zeros((30, 40), dtype=bool))


@pytest.fixture
def db_root(make_dermxdb) -> Path:
    writer = make_dermxdb()
    build(writer)
    return writer.root


def test_records_and_selection(db_root: Path) -> None:
    db = load_dermxdb(db_root, strict=True)
    assert db.report.ok
    assert len(db) == 3 and db.stems() == sorted([STEM_A, STEM_B])
    assert db.stems(with_metadata=False) == sorted([STEM_A, STEM_B, "nometa"])
    assert db.annotators() == ["labeller1", "labeller2", "labeller3"]
    assert db.annotators("repeat") == ["labeller12"]
    assert db.select_annotators([1, "labeller3"]) == ["labeller1", "labeller3"]
    with pytest.raises(ValueError, match="labeller9"):
        db.select_annotators([9])
    (first, second, third) = db.ratings_of(STEM_A)
    assert first.diagnoses == ("Psoriasis",) and second.diagnoses == ("Psoriasis", "Acne")
    assert second.diagnosis == "Psoriasis" and third.diagnosis == "Other-disease" and third.low_quality
    assert first.tags == ("Light skin",)
    assert first.characteristics == {"Plaque", "Scale"}
    assert first.shapes_of("Plaque")[0].attributes == ("Hyperpigmented", "Red")
    repeat = db.ratings_of(STEM_A, ["labeller12"])[0]
    assert repeat.rater == "labeller1" and repeat.pass_ is Pass.REPEAT
    assert db.ratings_of(STEM_B)[0].empty
    record = db.images[STEM_A]
    assert (record.width, record.height, record.diagnosis, record.patient_id) == (40, 30, "Psoriasis", 0)
    assert record.fold == 1 and db.images[STEM_B].fold == 0 and db.images["nometa"].fold is None
    assert db.fold(0).train == (STEM_A,) and db.fold(0).test == (STEM_B,)
    assert db.ignored_instance_masks == 1 and len(db.masks) == 5
    with pytest.raises(ValueError, match="no fold 5"):
        db.fold(5)


def test_rasterised_stack_even_odd_union_and_png_agree(db_root: Path) -> None:
    db = load_dermxdb(db_root)
    chars = ("Plaque", "Scale", "Patch")
    stack = db.rater_stack(STEM_A, characteristics=chars)
    assert stack.shape == (3, 3, 30, 40) and stack.dtype == torch.bool
    plaque = ring_mask([SQUARE], 40, 30) | ring_mask([[(25, 5), (35, 5), (35, 15)]], 40, 30)
    assert np.array_equal(stack[0, 0].numpy(), plaque)  # union of two instances
    assert np.array_equal(stack[1, 0].numpy(), ring_mask([OUTER, HOLE], 40, 30))
    assert stack[1, 0, 15, 15].item() is False and stack[1, 0, 7, 7].item() is True  # the hole is empty
    assert not stack[:, 2].any()  # rater 3 outlined nothing
    assert torch.equal(stack, db.rater_stack(STEM_A, characteristics=chars, source="png"))


def test_resize_by_area_coverage() -> None:
    mask = np.zeros((4, 4), dtype=bool)
    mask[:2, :2] = True  # top-left quarter
    mask[2, 2] = True  # a quarter of the bottom-right 2x2 block: below one half
    assert resize_mask(mask, (2, 2)).tolist() == [[True, False], [False, False]]
    assert resize_mask(mask, None) is mask


def test_fused_maps_hand_computed(db_root: Path) -> None:
    db = load_dermxdb(db_root)
    maps = db.fused_maps(STEM_A, characteristics=("Plaque",))[0]
    # at (12, 12) both raters 1 and 2 outlined a plaque, rater 3 nothing: mean = 2/3
    assert maps[12, 12].item() == pytest.approx(2 / 3)
    assert maps[3, 21].item() == pytest.approx(0.0)  # row 3 is above rater 1's square, x=21 beside it
    assert maps[21, 21].item() == pytest.approx(1 / 3)  # only rater 2's larger square
    stack = torch.tensor([[[1, 0]], [[1, 1]], [[0, 0]], [[1, 0]]], dtype=torch.bool).reshape(4, 1, 2)
    stack = stack.unsqueeze(0)  # (1, R=4, H=1, W=2)
    assert fuse(stack, "mean").flatten().tolist() == [0.75, 0.25]
    assert fuse(stack, "relative").flatten().tolist() == [1.0, pytest.approx(1 / 3)]
    assert fuse(stack, "any").flatten().tolist() == [1.0, 1.0]
    assert fuse(stack, "majority").flatten().tolist() == [1.0, 0.0]
    assert fuse(stack[:, :2], "majority").flatten().tolist() == [1.0, 0.0]  # 1 of 2 is not a majority
    assert fuse(stack, "all").flatten().tolist() == [0.0, 0.0]
    assert fuse(torch.zeros(1, 3, 2, 2, dtype=torch.bool), "relative").sum() == 0
    with pytest.raises(ValueError, match="unknown fusion rule"):
        fuse(stack, "median")  # type: ignore[arg-type]
    union = db.union_map(STEM_A, rule="any")
    assert union[7, 30].item() == 1.0  # only in rater 1's Scale ring


def test_cache_hit_and_invalidation(db_root: Path, tmp_path: Path) -> None:
    db = load_dermxdb(db_root, cache_dir=tmp_path / "cache")
    first = db.rater_stack(STEM_A, size=(15, 20))
    again = db.rater_stack(STEM_A, size=(15, 20))
    assert torch.equal(first, again) and (db.cache.hits, db.cache.misses) == (1, 1)
    path = db_root / "annotations" / f"labeller1_{STEM_A}.json"
    data = json.loads(path.read_text())
    data["annotations"] = [a for a in data["annotations"] if a["name"] != "Scale"]
    path.write_text(json.dumps(data))
    os.utime(path, ns=(1, 1))
    db = load_dermxdb(db_root, cache_dir=tmp_path / "cache")
    changed = db.rater_stack(STEM_A, size=(15, 20))
    assert db.cache.misses == 1 and not torch.equal(changed, first)


def _write_bad_inputs(root: Path) -> dict[str, str]:
    """Damage a good folder in every documented way; returns file fragment -> expected kind."""
    (root / "annotations" / "labeller4_broken.json").write_text("{not json")
    (root / "annotations" / "labeller4_IMG_B.json").write_text(json.dumps({
        "image": {"width": 40, "height": 30}, "annotations": [
            {"name": "Patch", "polygon": {"path": [{"x": 1, "y": 1}, {"x": 2, "y": 2}]}}]}))
    Image.new("L", (10, 10)).save(root / "masks" / "masks" / f"labeller2_{STEM_B}_Patch.png")
    Image.new("L", (40, 30)).save(root / "masks" / "masks" / f"labeller2_{STEM_B}_Scar.png")
    (root / "masks" / "masks" / f"labeller2_{STEM_A}_Plaque.png").unlink()
    (root / "masks" / "masks" / f"labeller1_{STEM_A}_Scale.png").write_bytes(b"not a png")
    metadata = root / "metadata.csv"
    metadata.write_text(metadata.read_text() + "ghost.jpg;SD-260;Acne;ghost.jpeg;light;young\n")
    return {
        "labeller4_broken.json": "invalid json",
        "labeller4_IMG_B.json": "bad polygon",
        f"labeller2_{STEM_B}_Patch.png": "mask size mismatch",
        f"labeller2_{STEM_B}_Scar.png": "mask without annotation",
        f"labeller2_{STEM_A}.json": "annotation without mask",
        f"labeller1_{STEM_A}_Scale.png": "unreadable mask",
        "metadata.csv": "metadata without annotations",
    }


def test_bad_inputs_are_reported_not_dropped(db_root: Path) -> None:
    expected = _write_bad_inputs(db_root)
    db = load_dermxdb(db_root)
    assert not db.report.ok
    assert sum(db.report.counts.values()) == len(db.report.issues) == len(expected)
    for fragment, kind in expected.items():
        assert db.report.counts[kind] >= 1, kind
        assert any(issue.path.name == fragment for issue in db.report.issues), fragment
    assert "ghost" in str(db.report)
    with pytest.raises(DermXDBError, match="unreadable PNG"):
        db.rater_stack(STEM_A, source="png")


def test_strict_raises_on_first_problem(db_root: Path) -> None:
    _write_bad_inputs(db_root)
    with pytest.raises(DermXDBError, match=r"labeller4_IMG_B\.json|labeller4_broken\.json"):
        load_dermxdb(db_root, strict=True)


def test_missing_folders(tmp_path: Path, db_root: Path) -> None:
    with pytest.raises(DermXDBError, match="not a DermXDB folder"):
        load_dermxdb(tmp_path / "nowhere")
    (db_root / "metadata.csv").unlink()
    db = load_dermxdb(db_root)
    assert db.report.counts["missing file"] == 1 and db.stems() == []


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "RGB"])
def test_load_rgb_any_mode(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"x.{'tiff' if mode == 'CMYK' else 'png'}"
    Image.new("RGB", (8, 6), (200, 100, 50)).convert(mode).save(path)
    image = load_rgb(path, (8, 6))
    assert image.mode == "RGB" and image.size == (8, 6)


def test_load_rgb_exif_orientation_and_size_check(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    Image.new("RGB", (8, 6)).save(path, exif=exif)
    assert load_rgb(path).size == (6, 8)
    with pytest.raises(DermXDBError, match=r"rotated\.jpg: image is 6x8"):
        load_rgb(path, (8, 6))
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    with pytest.raises(DermXDBError, match=r"bad\.jpg: unreadable image"):
        load_rgb(tmp_path / "bad.jpg")


def test_image_folder_matching(db_root: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 30)).save(images / "sub" / f"{STEM_A}.jpeg")
    Image.new("RGB", (41, 30)).save(images / f"{STEM_B}.png")
    db = load_dermxdb(db_root, image_dir=images)
    assert db.load_image(STEM_A).size == (40, 30)
    with pytest.raises(DermXDBError, match="41x30"):
        db.load_image(STEM_B)
    with pytest.raises(DermXDBError, match="no image file for 'nometa'"):
        db.image_path("nometa")


def test_cli_summary_json(db_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    result = CliRunner().invoke(app, ["data", "summary", "--data", str(db_root), "--json", str(out)])
    assert result.exit_code == 0, result.output
    counts = json.loads(out.read_text())
    assert counts["images"] == 3 and counts["images_with_metadata"] == 2
    assert counts["annotation_files"] == 7 and counts["empty_annotation_files"] == 1
    assert counts["merged_masks"] == 5 and counts["ignored_instance_masks"] == 1
    assert counts["first_pass_raters"] == 3 and counts["repeat_pass_images"] == 1
    assert counts["characteristic_selections"]["Plaque"] == 3
    assert "images with metadata" in result.output


def test_cli_reports_missing_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "summary", "--data", str(tmp_path / "none")])
    assert result.exit_code == 2 and "does not exist" in plain(result.output)  # usage: checked by Click
    result = CliRunner().invoke(app, ["data", "summary", "--data", str(tmp_path)])
    assert result.exit_code == 1 and "not a DermXDB folder" in plain(result.output)  # the run failed
    assert "Traceback" not in result.output
