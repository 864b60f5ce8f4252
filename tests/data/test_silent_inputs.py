"""Inputs that used to load without a word and change the numbers: a stray quote in a CSV, misspelt
names, a second file of one rater, a mask drawn in its alpha channel, fold files that break the
patient grouping; and inputs that used to take a whole load down: a decompression-bomb mask, an empty
or unreadable annotation folder. Each is a load-report entry naming the file (an error with
``strict=True``), and the data that does load is unchanged."""

from __future__ import annotations

import json
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from dermx.cli import app
from dermx.data import DermXDBError, load_dermxdb
from dermx.data import reader as data_reader
from support import DermXDBWriter, clean_dermxdb, polygon

SQUARE = [(2, 2), (20, 2), (20, 20), (2, 20)]
STEMS = [f"img{i}" for i in range(6)]
DIAGNOSES = ["Acne", "Actinic keratosis", "Psoriasis", "Seborrheic dermatitis", "Viral warts", "Vitiligo"]


def build(writer: DermXDBWriter) -> None:
    """Six images (patient i // 2), two raters, metadata and two folds: loads with an empty report."""
    for i, (stem, diagnosis) in enumerate(zip(STEMS, DIAGNOSES, strict=True)):
        for rater, shift in (("labeller1", 0), ("labeller2", 2)):
            shape = [(x + shift, y + i) for x, y in SQUARE]
            writer.annotation(rater, stem, [{"name": diagnosis, "tag": {}}, {"name": "Plaque", **polygon(shape)}])
    writer.metadata(list(zip(STEMS, DIAGNOSES, strict=True)))
    rows = [(stem, diagnosis, i // 2) for i, (stem, diagnosis) in enumerate(zip(STEMS, DIAGNOSES, strict=True))]
    writer.folds([(rows[2:], rows[:2]), (rows[:2] + rows[4:], rows[2:4])])


@pytest.fixture
def root(make_dermxdb) -> Path:
    return clean_dermxdb(make_dermxdb(), build)


def entries(db, name: str, kind: str) -> list[str]:
    """The problems reported for file ``name`` (checked to be counted under ``kind``)."""
    assert db.report.counts[kind] >= 1, str(db.report)
    return [issue.problem for issue in db.report.issues if issue.path.name == name]


def strict_fails(root: Path, name: str) -> None:
    with pytest.raises(DermXDBError, match=name.replace(".", r"\.").replace("(", r"\(")):
        load_dermxdb(root, strict=True)


# ----- CSV: a stray quote -------------------------------------------------------------------------
def test_stray_quote_in_metadata_reports_every_row_it_swallows(root: Path) -> None:
    path = root / "metadata.csv"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace(";Actinic keratosis;", ';"Actinic keratosis;')  # line 3 opens a quote
    path.write_text("\n".join(lines) + "\n")
    db = load_dermxdb(root)
    lost = entries(db, "metadata.csv", "lost row")
    # lines 3..7 (img1..img5) are one row for the CSV reader: each is reported with its line and image
    for line, stem in zip(range(3, 8), STEMS[1:], strict=True):
        assert any(p.startswith(f"line {line}:") and f"'{stem}.jpeg'" in p for p in lost), lost
    assert "stray" in lost[0] and db.report.counts["lost row"] == 5
    assert any("reference diagnoses for only 1 of the 6" in p for p in entries(db, "metadata.csv", "metadata coverage"))
    assert db.stems() == ["img0"]
    strict_fails(root, "metadata.csv")


def test_stray_quote_in_a_fold_file_is_reported_row_by_row(root: Path) -> None:
    path = root / "folds" / "metadata_fold_0_train.csv"
    path.write_text(path.read_text().replace(",img3.jpeg,", ',"img3.jpeg,', 1))
    db = load_dermxdb(root)
    lost = entries(db, path.name, "lost row")
    assert len(lost) == 3 and "img3.jpeg" in lost[0] and "img5.jpeg" in lost[2], lost
    assert db.fold(0).train == ("img2",)


# ----- names --------------------------------------------------------------------------------------
def rename_annotation(root: Path, file: str, index: int, name: str) -> None:
    path = root / "annotations" / file
    document = json.loads(path.read_text())
    document["annotations"][index]["name"] = name
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(("name", "nearest"), [("Actinic keratoses", "'Actinic keratosis'"),
                                               ("Eczema", "no known name is close")])
def test_misspelt_diagnosis_tag_is_a_problem_not_a_tag(root: Path, name: str, nearest: str) -> None:
    rename_annotation(root, "labeller1_img1.json", 0, name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a report entry, not a UserWarning
        db = load_dermxdb(root)
    (problem,) = entries(db, "labeller1_img1.json", "unknown name")
    assert f"annotation 0: unknown name {name!r}" in problem and nearest in problem
    (rating,) = db.ratings_of("img1", ["labeller1"])
    assert rating.diagnoses == () and rating.tags == ()
    strict_fails(root, "labeller1_img1.json")


def test_misspelt_characteristic_outline_is_a_problem(root: Path) -> None:
    rename_annotation(root, "labeller2_img0.json", 1, "Plaques x")
    db = load_dermxdb(root)
    (problem,) = entries(db, "labeller2_img0.json", "unknown name")
    assert "'Plaques x' (nearest known name: 'Plaque')" in problem
    assert db.ratings_of("img0", ["labeller2"])[0].characteristics == frozenset()


def test_unknown_metadata_diagnosis_is_reported_at_load(root: Path, tmp_path: Path) -> None:
    path = root / "metadata.csv"
    path.write_text(path.read_text().replace(";Psoriasis;", ";Psoriasys;"))
    db = load_dermxdb(root)
    (problem,) = entries(db, "metadata.csv", "unknown name")
    assert problem.startswith("line 4: diagnosis: unknown name 'Psoriasys' (nearest known name: 'Psoriasis')")
    assert "img2" not in db.stems() and len(db.stems()) == 5
    result = CliRunner().invoke(app, ["interrater", "--data", str(root), "--out", str(tmp_path / "agreement")])
    assert result.exit_code == 0, result.output
    assert "Psoriasys" in result.output  # the load report, printed before the tables


# ----- raters -------------------------------------------------------------------------------------
@pytest.mark.parametrize("prefix", ["labeller01", "labeller\uff11"])  # a leading zero, a full-width digit
def test_a_second_file_of_one_rater_is_not_another_rater(root: Path, prefix: str) -> None:
    before = load_dermxdb(root).fused_maps("img0")
    original = root / "annotations" / "labeller1_img0.json"
    copy = root / "annotations" / f"{prefix}_img0.json"
    copy.write_text(original.read_text().replace('"x": 2,', '"x": 6,'))  # another outline
    db = load_dermxdb(root)
    (problem,) = entries(db, copy.name, "duplicate rating")
    assert "beside labeller1_img0.json" in problem
    assert db.annotators() == ["labeller1", "labeller2"]
    assert torch.equal(db.fused_maps("img0"), before)
    strict_fails(root, copy.name)


def test_rater_names_are_read_in_ascii_digits(root: Path) -> None:
    for stem in STEMS:  # labeller01 alone is rater 1
        (root / "annotations" / f"labeller1_{stem}.json").rename(root / "annotations" / f"labeller01_{stem}.json")
    for mask in (root / "masks" / "masks").glob("labeller1_*.png"):
        mask.rename(mask.with_name(mask.name.replace("labeller1_", "labeller01_")))
    db = load_dermxdb(root, strict=True)
    assert db.annotators() == ["labeller1", "labeller2"] and db.report.ok
    (root / "annotations" / "labeller\u0661_img0.json").write_text("{}")  # an Arabic-Indic digit
    assert "not a DermXDB annotator name" in entries(load_dermxdb(root), "labeller\u0661_img0.json",
                                                      "bad file name")[0]


# ----- masks --------------------------------------------------------------------------------------
def test_mask_with_lesion_in_alpha_is_read_through_alpha(root: Path) -> None:
    path = root / "masks" / "masks" / "labeller1_img0_Plaque.png"
    lesion = np.asarray(Image.open(path)) > 127
    rgba = np.full((*lesion.shape, 4), 255, np.uint8)
    rgba[..., 3] = lesion * 255  # white everywhere, opaque on the lesion only
    Image.fromarray(rgba, "RGBA").save(path)
    db = load_dermxdb(root, strict=True)
    stack = db.rater_stack("img0", annotators=["labeller1"], characteristics=["Plaque"], source="png")[0, 0]
    assert torch.equal(stack, torch.from_numpy(lesion))
    assert 0 < stack.sum() < stack.numel() / 2


def bomb_png(width: int = 40000, height: int = 40000) -> bytes:
    """A valid PNG whose header declares ``width`` x ``height`` pixels (over Pillow's bomb limit)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def test_decompression_bomb_mask_is_one_reported_file(root: Path, tmp_path: Path) -> None:
    path = root / "masks" / "masks" / "labeller1_img0_Plaque.png"
    path.write_bytes(bomb_png())
    db = load_dermxdb(root)
    (problem,) = entries(db, path.name, "unreadable mask")
    assert "exceeds limit" in problem and len(db.report.issues) == 1
    with pytest.raises(DermXDBError, match=r"labeller1_img0_Plaque\.png: unreadable PNG"):
        db.rater_stack("img0", source="png")
    strict_fails(root, path.name)
    out = tmp_path / "summary.json"
    result = CliRunner().invoke(app, ["data", "summary", "--data", str(root), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert [Path(e["file"]).name for e in json.loads(out.read_text())["load_report"]] == [path.name]
    result = CliRunner().invoke(app, ["interrater", "--data", str(root), "--out", str(tmp_path / "agreement")])
    assert result.exit_code == 0 and (tmp_path / "agreement" / "summary.json").is_file(), result.output


# ----- folds --------------------------------------------------------------------------------------
ADD_IMG0 = "img2.jpeg,1\n9,img0.jpg,SD-260,Acne,img0.jpeg,0\n"
#: case: (edits (fold file, text, replacement), file the report names, kind, text of the entry). Fold 0:
#: train img2..img5 (patients 1, 1, 2, 2), test img0, img1 (patient 0); fold 1: test img2, img3.
FOLD_CASES: dict[str, tuple[tuple[tuple[str, str, str], ...], str, str, str]] = {
    "image-in-two-test-folds": ((("1_test", "img2.jpeg,1\n", ADD_IMG0),), "1_test", "image in two test folds",
                                "test parts of folds 0 and 1"),
    "image-in-train-and-test": ((("0_train", "img2.jpeg,1\n", ADD_IMG0),), "0_test", "image in train and test",
                                "both the train and the test"),
    "row-for-unknown-image": ((("0_train", "img2.jpeg,1\n", "img2.jpeg,1\n9,ghost.jpg,SD-260,Acne,ghost.jpeg,7\n"),),
                              "0_train", "fold row for unknown image", "'ghost', which has no annotation"),
    "disagreeing-patient-ids": ((("1_train", "img4.jpeg,2\n", "img4.jpeg,5\n"),), "1_train", "patient id mismatch",
                                "patient id 5, but 2 in 1 other row"),
    "patient-split": ((("0_train", "img2.jpeg,1\n", "img2.jpeg,0\n"), ("1_test", "img2.jpeg,1\n", "img2.jpeg,0\n")),
                      "0_test", "patient in train and test", "patient 0 has images in both parts of fold 0"),
}


@pytest.mark.parametrize("case", list(FOLD_CASES))
def test_fold_file_problems_are_load_problems(root: Path, case: str) -> None:
    edits, named, kind, fragment = FOLD_CASES[case]
    for part, old, new in edits:
        path = root / "folds" / f"metadata_fold_{part}.csv"
        assert old in path.read_text()
        path.write_text(path.read_text().replace(old, new, 1))
    name = f"metadata_fold_{named}.csv"
    db = load_dermxdb(root)
    assert any(fragment in p for p in entries(db, name, kind)), str(db.report)
    strict_fails(root, name)


@pytest.mark.slow
def test_real_fold_files_pass_the_checks(dermxdb) -> None:
    kinds = {"image in two test folds", "image in train and test", "fold row for unknown image",
             "patient id mismatch", "patient in train and test", "duplicate fold row", "lost row", "unknown name",
             "duplicate rating", "duplicate mask", "metadata coverage"}
    assert not kinds & set(dermxdb.report.counts), str(dermxdb.report)


# ----- the annotation folder ----------------------------------------------------------------------
def test_empty_annotation_folder_says_so_once(root: Path) -> None:
    for path in (root / "annotations").iterdir():
        path.unlink()
    with pytest.raises(DermXDBError, match=r"annotations: no annotation files"):
        load_dermxdb(root)
    result = CliRunner().invoke(app, ["data", "summary", "--data", str(root)])
    assert result.exit_code == 1 and "no annotation files" in result.output
    assert len(result.output.strip().splitlines()) <= 3, result.output


def test_unreadable_annotation_folder_says_permission_denied(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scandir = os.scandir

    def refused(path: os.PathLike | str = ".") -> object:
        if Path(path).name == "annotations":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(data_reader.os, "scandir", refused)
    with pytest.raises(DermXDBError, match=r"annotations: cannot list the annotation folder \(Permission denied\)"):
        load_dermxdb(root)


def test_unreadable_annotation_files_say_the_cause_once(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refused)
    with pytest.raises(DermXDBError, match=r"none of the 12 annotation files could be read.*Permission denied"):
        load_dermxdb(root)


def test_a_million_character_name_in_a_file_is_shortened_in_the_report(root: Path) -> None:
    rename_annotation(root, "labeller1_img1.json", 0, "x" * 1_000_000)
    path = root / "metadata.csv"
    path.write_text(path.read_text() + f"{'y' * 1_000_000}.jpg;SD-260;Acne;{'y' * 1_000_000}.jpeg;light;young\n")
    report = str(load_dermxdb(root).report)
    assert len(report) < 2000 and report.count(",000,00") == 2, report[:3000]  # 1,000,000 and 1,000,005
