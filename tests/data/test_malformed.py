"""Malformed inputs: each is one load-report entry naming its file and field (an error under
``strict=True``), never a raw traceback nor a silently wrong value; high-bit-depth images read right."""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dermx.cli import app
from dermx.data import DermXDBError, load_dermxdb, load_rgb
from support import DermXDBWriter, clean_dermxdb, polygon

SQUARE = [(2, 2), (20, 2), (20, 20), (2, 20)]
A, B = "imgA", "imgB"


def build(writer: DermXDBWriter) -> None:
    """Two images, two raters, metadata and one fold: loads with an empty report."""
    writer.annotation("labeller1", A, [{"name": "Psoriasis", "tag": {}},
                                       {"name": "Plaque", **polygon(SQUARE), "attributes": ["Red"]},
                                       {"name": "Scale", **polygon([(5, 5), (30, 5), (30, 25)])}])
    writer.annotation("labeller2", A, [{"name": "Acne", "tag": {}}, {"name": "Papule", **polygon(SQUARE)}])
    writer.annotation("labeller1", B, [{"name": "Vitiligo", "tag": {}}])
    writer.annotation("labeller2", B, [{"name": "Vitiligo", "tag": {}}, {"name": "Patch", **polygon(SQUARE)}])
    writer.metadata([(A, "Psoriasis"), (B, "Vitiligo")])
    writer.folds([([(A, "Psoriasis", 1)], [(B, "Vitiligo", 2)])])


@pytest.fixture
def root(make_dermxdb) -> Path:
    return clean_dermxdb(make_dermxdb(), build)


def edit_annotation(root: Path, name: str, change: Callable[[dict], None]) -> str:
    path = root / "annotations" / name
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))  # NaN and infinities are written as NaN / Infinity
    return name


def set_point(root: Path, axis: str, value: float) -> str:
    def change(document: dict) -> None:
        document["annotations"][1]["polygon"]["path"][0][axis] = value
    return edit_annotation(root, f"labeller1_{A}.json", change)


def set_field(index: int, key: str, value: object) -> Callable[[Path], str]:
    def mutate(root: Path) -> str:
        def change(document: dict) -> None:
            document["annotations"][index][key] = value
        return edit_annotation(root, f"labeller1_{A}.json", change)
    return mutate


def move_polygon_outside(root: Path) -> str:
    def change(document: dict) -> None:
        document["annotations"][1].update(polygon([(100, 2), (120, 2), (120, 20)]))
    return edit_annotation(root, f"labeller1_{A}.json", change)


def drop_box_x(root: Path) -> str:
    def change(document: dict) -> None:
        del document["annotations"][1]["bounding_box"]["x"]
    return edit_annotation(root, f"labeller1_{A}.json", change)


def negative_box_width(root: Path) -> str:
    def change(document: dict) -> None:
        document["annotations"][1]["bounding_box"]["w"] = -18.0
    return edit_annotation(root, f"labeller1_{A}.json", change)


def annotations_as_object(root: Path) -> str:
    def change(document: dict) -> None:
        document["annotations"] = {"first": document["annotations"][0]}
    return edit_annotation(root, f"labeller2_{A}.json", change)


def annotations_with_number(root: Path) -> str:
    def change(document: dict) -> None:
        document["annotations"].append(7)
    return edit_annotation(root, f"labeller2_{A}.json", change)


def truncate_mask(root: Path) -> str:
    path = root / "masks" / "masks" / f"labeller1_{A}_Plaque.png"
    data = path.read_bytes()
    path.write_bytes(data[:33 + 20])  # signature and IHDR intact, the image data cut short
    return path.name


def edit_text(path: Path, change: Callable[[str], str]) -> str:
    path.write_text(change(path.read_text()))
    return path.name


def metadata_without_skin_tone(root: Path) -> str:
    def change(text: str) -> str:
        rows = [line.split(";") for line in text.splitlines()]
        return "\n".join(";".join(r[:4] + r[5:]) for r in rows) + "\n"
    return edit_text(root / "metadata.csv", change)


def metadata_not_utf8(root: Path) -> str:
    path = root / "metadata.csv"
    path.write_bytes(path.read_bytes().replace(b"SD-260", b"SD-\xe9260", 1))
    return path.name


def metadata_short_row(root: Path) -> str:
    return edit_text(root / "metadata.csv", lambda text: text.replace(";light;young", "", 1))


def metadata_long_row(root: Path) -> str:
    return edit_text(root / "metadata.csv", lambda text: text.replace(";light;young", ";light;young;extra", 1))


def fold_long_row(root: Path) -> str:
    return edit_text(root / "folds" / "metadata_fold_0_train.csv", lambda text: text.replace(",1\n", ",1,2\n", 1))


def fold_without_current_filename(root: Path) -> str:
    return edit_text(root / "folds" / "metadata_fold_0_test.csv",
                     lambda text: text.replace("current_filename", "filename"))


def fold_patient_not_a_number(root: Path) -> str:
    return edit_text(root / "folds" / "metadata_fold_0_train.csv", lambda text: text.replace(",1\n", ",P-1\n"))


CASES: dict[str, tuple[Callable[[Path], str], str, str]] = {
    # id: (mutation returning the damaged file's name, expected report kind, text the entry must hold)
    "nan-coordinate": (lambda r: set_point(r, "x", float("nan")), "invalid annotation", "polygon.path[0].x"),
    "infinite-coordinate": (lambda r: set_point(r, "y", float("inf")), "invalid annotation", "polygon.path[0].y"),
    "polygon-outside-image": (move_polygon_outside, "polygon outside image", "entirely outside the 40x30 image"),
    "huge-coordinate": (lambda r: set_point(r, "x", 1e12), "polygon outside image", "beyond the edges"),
    "negative-box-width": (negative_box_width, "invalid annotation", "bounding_box.w"),
    "truncated-mask": (truncate_mask, "unreadable mask", "unreadable PNG"),
    "metadata-without-skin-tone": (metadata_without_skin_tone, "missing column", "'skin_tone'"),
    "box-without-x": (drop_box_x, "invalid annotation", "bounding_box.x: Field required"),
    "annotations-object": (annotations_as_object, "invalid json", "annotations: Input should be a valid array"),
    "annotations-number": (annotations_with_number, "invalid annotation", "annotation 2: Input should be an object"),
    "name-number": (set_field(0, "name", 12), "invalid annotation", "name: Input should be a valid string"),
    "attributes-number": (set_field(1, "attributes", 3), "invalid annotation", "attributes: Input should be"),
    "metadata-not-utf8": (metadata_not_utf8, "not utf-8", "line 2: byte 0xe9"),
    "metadata-short-row": (metadata_short_row, "invalid row", "line 2: skin_tone: missing cell"),
    "metadata-long-row": (metadata_long_row, "invalid row", "line 2: (cells beyond the header): Value error, the "
                                                           "row has 1 cell(s) more than the header"),
    "fold-long-row": (fold_long_row, "invalid row", "1 cell(s) more than the header"),
    "fold-without-current-filename": (fold_without_current_filename, "missing column", "['current_filename']"),
    "fold-patient-not-a-number": (fold_patient_not_a_number, "invalid row", "patient_id: Input should be a valid"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_input_is_one_report_entry_naming_file_and_field(root: Path, case: str) -> None:
    mutate, kind, fragment = CASES[case]
    name = mutate(root)
    db = load_dermxdb(root)
    named = [issue for issue in db.report.issues if issue.path.name == name]
    assert named and any(fragment in issue.problem for issue in named), str(db.report)
    assert db.report.counts[kind] >= 1, str(db.report)
    with pytest.raises(DermXDBError, match=name.replace(".", r"\.")):
        load_dermxdb(root, strict=True)


@pytest.mark.parametrize("case", list(CASES))
def test_data_summary_reports_malformed_input(root: Path, tmp_path: Path, case: str) -> None:
    name = CASES[case][0](root)
    out = tmp_path / "summary.json"
    result = CliRunner().invoke(app, ["data", "summary", "--data", str(root), "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())["load_report"]
    assert any(Path(entry["file"]).name == name for entry in report), report


def test_malformed_annotation_keeps_the_rest_of_its_file(root: Path) -> None:
    set_point(root, "x", float("nan"))  # the Plaque outline of labeller1 on imgA
    db = load_dermxdb(root)
    (rating,) = db.ratings_of(A, ["labeller1"])
    assert rating.diagnoses == ("Psoriasis",) and rating.characteristics == {"Scale"}


def test_missing_skin_tone_column_is_not_a_value(root: Path) -> None:
    metadata_without_skin_tone(root)
    db = load_dermxdb(root)
    assert db.images[A].skin_tone is None and db.images[A].diagnosis == "Psoriasis"
    assert db.images[A].age == "young"


# ----- high bit depth -----------------------------------------------------------------------------
def png_16bit(samples: np.ndarray) -> bytes:
    """A 16-bit PNG (gray, RGB or RGBA by the last axis) written by hand: Pillow cannot write RGB at
    16 bits."""
    height, width, channels = samples.shape
    color_type = {1: 0, 3: 2, 4: 6}[channels]
    raw = b"".join(b"\x00" + samples[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


GRAY = np.random.default_rng(0).integers(0, 256, (10, 12), dtype=np.uint8)
COLOR = np.random.default_rng(1).integers(0, 256, (10, 12, 3), dtype=np.uint8)


def save_pil(image: Image.Image, suffix: str) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / f"picture{suffix}"
        image.save(path)
        return path
    return write


def save_bytes(data: bytes, suffix: str) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / f"picture{suffix}"
        path.write_bytes(data)
        return path
    return write


WIDE = GRAY.astype(np.uint16) * 257  # 8-bit u as 16-bit 257 u: black to black, white to white
HIGH_DEPTH: dict[str, tuple[Callable[[Path], Path], np.ndarray]] = {
    "png-16-gray": (save_pil(Image.fromarray(WIDE), ".png"), GRAY),
    "tiff-16-gray": (save_pil(Image.fromarray(WIDE), ".tiff"), GRAY),
    "pgm-16-gray": (save_pil(Image.fromarray(WIDE), ".pgm"), GRAY),  # opens as mode I
    "tiff-16-gray-big-endian": (save_pil(Image.frombytes("I;16B", (12, 10), WIDE.astype(">u2").tobytes()),
                                         ".tiff"), GRAY),
    "tiff-float": (save_pil(Image.fromarray(GRAY.astype(np.float32) / 255), ".tiff"), GRAY),
    "png-16-rgb": (save_bytes(png_16bit(COLOR.astype(np.uint16) * 257), ".png"), COLOR),
}


@pytest.mark.parametrize("case", list(HIGH_DEPTH))
def test_high_bit_depth_reads_like_8_bits(tmp_path: Path, case: str) -> None:
    write, expected = HIGH_DEPTH[case]
    eight = tmp_path / "eight.png"
    Image.fromarray(expected).save(eight)
    image = load_rgb(write(tmp_path), (12, 10))
    assert image.mode == "RGB"
    pixels, reference = np.asarray(image).astype(int), np.asarray(load_rgb(eight)).astype(int)
    assert np.abs(pixels - reference).max() <= 1


def test_unknown_sample_range_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "radiance.tiff"
    Image.fromarray(np.full((4, 4), 300.0, dtype=np.float32)).save(path)
    with pytest.raises(DermXDBError, match=r"radiance\.tiff: .*F samples span \[300, 300\]"):
        load_rgb(path)


def test_predict_reads_16_bit_uploads_like_8_bits() -> None:
    from dermx.predict.io import open_image

    buffer = io.BytesIO()
    Image.fromarray(WIDE).save(buffer, "PNG")
    image, _ = open_image(buffer.getvalue(), "upload.png")
    assert np.array_equal(np.asarray(image)[..., 0], GRAY)
