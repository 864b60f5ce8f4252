"""A bounded, seeded mutation fuzz of the loader: damage one file of a small synthetic release at a
time (JSON values and structure, CSV cells and columns, raw bytes, mask PNGs) and check that loading
either succeeds with report entries naming files of the release or raises :class:`DermXDBError`
naming one, never a raw exception, and that what loads can be summarised and rasterised.

A second fuzz makes the changes that used to load silently with other numbers (a stray quote, a
misspelt name, a second file of one rater, fold files breaking the patient grouping) or took the load
down (a decompression-bomb mask, no annotation file), and checks that each is reported naming the file,
and that a mask drawn in its alpha channel reads as the same mask."""

from __future__ import annotations

import json
import random
import shutil
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
from PIL import Image

from dermx.data import DermXDBError, load_dermxdb
from dermx.data.summary import dataset_summary

pytestmark = pytest.mark.slow  # end-to-end runs: `make test`, not `make test-fast`

ITERATIONS = 200
TIME_LIMIT_S = 12.0  # a wall-time cap for busy machines: the same seeded mutations, fewer of them
JUNK: tuple[Any, ...] = (None, True, False, 0, -1, 7, 2**40, 1e308, -1e308, float("nan"), float("inf"), "",
                         "x", "Plaque", [], {}, [1], {"x": 1}, [{"x": 1, "y": 2}])
CELL_JUNK: tuple[str, ...] = ("", " ", "x", "-1", "1.5", "NaN", "a;b", "a,b", '"', "\u00e9")


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dermx.data.synth import generate

    root = tmp_path_factory.mktemp("fuzz") / "db"
    generate(root, n_images=5, n_raters=3, min_raters=3, size=(40, 48), repeat_fraction=0.4, progress=False)
    assert load_dermxdb(root, strict=True).report.ok
    return root


def _containers(node: Any, out: list[Any]) -> list[Any]:
    if isinstance(node, dict | list):
        out.append(node)
        for child in node.values() if isinstance(node, dict) else node:
            _containers(child, out)
    return out


def mutate_json(data: bytes, rng: random.Random) -> bytes:
    """Replace, delete or add one value anywhere in the document, or damage its bytes."""
    choice = rng.random()
    if choice < 0.15:
        return _mutate_bytes(data, rng)
    document = json.loads(data)
    node = rng.choice(_containers(document, []))
    keys = list(node) if isinstance(node, dict) else list(range(len(node)))
    if not keys or choice < 0.25:
        key = rng.choice(["name", "tag", "x", "path", "bounding_box", "attributes", "width", "polygon"])
        if isinstance(node, dict):
            node[key] = rng.choice(JUNK)
        else:
            node.append(rng.choice(JUNK))
    elif choice < 0.45:
        del node[rng.choice(keys)]
    else:
        node[rng.choice(keys)] = rng.choice(JUNK)
    return json.dumps(document).encode()


def mutate_csv(data: bytes, rng: random.Random) -> bytes:
    """Blank, replace, drop or add a cell, drop a column, or damage the bytes."""
    choice = rng.random()
    if choice < 0.2:
        return _mutate_bytes(data, rng)
    delimiter = ";" if b";" in data.splitlines()[0] else ","
    rows = [line.split(delimiter) for line in data.decode().splitlines()]
    if choice < 0.35:
        column = rng.randrange(len(rows[0]))
        rows = [r[:column] + r[column + 1:] for r in rows]
    else:
        row = rng.choice(rows)
        cell = rng.randrange(len(row))
        if choice < 0.55:
            del row[cell]
        elif choice < 0.65:
            row.append(rng.choice(CELL_JUNK))
        else:
            row[cell] = rng.choice(CELL_JUNK)
    return ("\n".join(delimiter.join(r) for r in rows) + "\n").encode()


def _mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) + 1)
    choice = rng.random()
    if choice < 0.4:
        return data[:at]
    if choice < 0.8:
        return data[:at] + bytes([rng.choice([0x00, 0x80, 0xC3, 0xE9, 0xFF])]) + data[at:]
    return b""


MUTATORS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    ".json": mutate_json, ".csv": mutate_csv, ".png": _mutate_bytes}


def check_load(root: Path, changed: Path) -> None:
    try:
        db = load_dermxdb(root)
    except DermXDBError as error:  # only unrecoverable input may raise without strict
        assert changed.name in str(error)
        return
    for issue in db.report.issues:
        assert issue.path == root or root in issue.path.parents, issue
    dataset_summary(db)
    for stem in db.stems(with_metadata=False):
        db.rater_stack(stem, size=(8, 8))
    try:
        load_dermxdb(root, strict=True)
    except DermXDBError as error:
        assert not db.report.ok and str(root) in str(error), error
    else:
        assert db.report.ok


def test_mutated_files_give_report_entries_or_the_loaders_error(release: Path) -> None:
    rng = random.Random(15)
    files = sorted([*release.glob("annotations/*.json"), *release.glob("masks/masks/*.png"),
                    *release.glob("folds/*.csv"), release / "metadata.csv"])
    by_kind = {suffix: [p for p in files if p.suffix == suffix] for suffix in MUTATORS}
    weights = {".json": 0.6, ".csv": 0.3, ".png": 0.1}
    start = time.perf_counter()
    done = 0
    while done < ITERATIONS and time.perf_counter() - start < TIME_LIMIT_S:
        suffix = rng.choices(list(weights), list(weights.values()))[0]
        path = rng.choice(by_kind[suffix])
        original = path.read_bytes()
        path.write_bytes(MUTATORS[suffix](original, rng))
        try:
            check_load(release, path)
        except BaseException as error:
            raise AssertionError(f"mutation {done} of {path.name} ({path.read_bytes()[:300]!r}): {error!r}") from error
        finally:
            path.write_bytes(original)
        done += 1
    print(f"{done} mutations in {time.perf_counter() - start:.1f} s")
    assert done > 0


# ----- changes that used to pass silently -----------------------------------------------------------
class Expected(NamedTuple):
    """What the report must say of a change: at least ``count`` entries of ``kind`` naming file ``name``."""

    name: str
    kind: str
    count: int = 1


Change = Callable[[Path, random.Random], Expected]
"""Make one change to a copy of the release; returns what the load report must hold."""


def _data_rows(path: Path) -> list[int]:
    """Indices of the lines of a CSV file after its header."""
    return list(range(1, len(path.read_text().splitlines())))


def stray_quote(root: Path, rng: random.Random) -> str:
    path = rng.choice([root / "metadata.csv", *(p for p in sorted(root.glob("folds/*.csv")) if _data_rows(p))])
    lines = path.read_text().splitlines()
    line = rng.choice(_data_rows(path))
    delimiter = ";" if path.name == "metadata.csv" else ","
    cells = lines[line].split(delimiter)
    cell = rng.randrange(len(cells))
    cells[cell] = '"' + cells[cell]
    lines[line] = delimiter.join(cells)
    path.write_text("\n".join(lines) + "\n")
    return Expected(path.name, "lost row", len(lines) - line)  # the quote runs to the end: every row after it lost


def misspelt_annotation_name(root: Path, rng: random.Random) -> str:
    files = [p for p in sorted(root.glob("annotations/*.json")) if json.loads(p.read_text())["annotations"]]
    path = rng.choice(files)
    document = json.loads(path.read_text())
    annotation = rng.choice(document["annotations"])
    annotation["name"] = rng.choice([annotation["name"] + "zz", "Eczema", annotation["name"][::-1]])
    path.write_text(json.dumps(document))
    return Expected(path.name, "unknown name")


def misspelt_metadata_diagnosis(root: Path, rng: random.Random) -> str:
    path = root / "metadata.csv"
    lines = path.read_text().splitlines()
    line = rng.choice(_data_rows(path))
    cells = lines[line].split(";")
    cells[2] = rng.choice(["Eczema", cells[2] + "zz", cells[2][:-2]])
    lines[line] = ";".join(cells)
    path.write_text("\n".join(lines) + "\n")
    return Expected(path.name, "unknown name")


def second_rater_file(root: Path, rng: random.Random) -> str:
    path = rng.choice(sorted(root.glob("annotations/*.json")))
    annotator, _, stem = path.stem.partition("_")
    number = annotator.removeprefix("labeller")
    spelling = rng.choice(["0" + number, number.translate(str.maketrans("0123456789", "０１２３４５６７８９"))])
    copy = path.with_name(f"labeller{spelling}_{stem}.json")
    shutil.copy(path, copy)
    return Expected(copy.name, "duplicate rating")


def _fold_file(root: Path, part: str, rng: random.Random) -> Path:
    return rng.choice([p for p in sorted(root.glob(f"folds/*_{part}.csv")) if _data_rows(p)])


def _append(path: Path, row: str) -> None:
    path.write_text(path.read_text() + row + "\n")


def fold_test_row_in_its_train_part(root: Path, rng: random.Random) -> str:
    test = _fold_file(root, "test", rng)
    _append(test.with_name(test.name.replace("_test", "_train")), rng.choice(test.read_text().splitlines()[1:]))
    return Expected(test.name, "image in train and test")


def fold_test_row_in_another_test_part(root: Path, rng: random.Random) -> str:
    source = _fold_file(root, "test", rng)
    target = rng.choice([p for p in sorted(root.glob("folds/*_test.csv")) if p != source])
    _append(target, rng.choice(source.read_text().splitlines()[1:]))
    return Expected(max(source.name, target.name), "image in two test folds")  # named: the later fold's file


def row_for_unknown_image(root: Path, rng: random.Random) -> str:
    path = rng.choice(sorted(root.glob("folds/*.csv")))
    _append(path, "99,ghost.jpg,Synthetic-A,Acne,ghost.jpeg,99")
    return Expected(path.name, "fold row for unknown image")


def other_patient_id(root: Path, rng: random.Random) -> str:
    path = _fold_file(root, rng.choice(["train", "test"]), rng)
    lines = path.read_text().splitlines()
    line = rng.choice(_data_rows(path))
    cells = lines[line].split(",")
    cells[-1] = str(int(cells[-1]) + 100)
    lines[line] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    return Expected(path.name, "patient id mismatch")  # named as the changed row, or as the row it contradicts


def bomb_mask(root: Path, rng: random.Random) -> str:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path = rng.choice(sorted(root.glob("masks/masks/*.png")))
    side = rng.choice([20000, 40000, 65535])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return Expected(path.name, "unreadable mask")


def no_annotation_file(root: Path, rng: random.Random) -> str:
    for path in root.glob("annotations/*.json"):
        path.unlink()
    return Expected("annotations", "")  # nothing loads: the one error names the folder


SILENT: dict[str, Change] = {
    "stray quote": stray_quote, "misspelt annotation name": misspelt_annotation_name,
    "misspelt metadata diagnosis": misspelt_metadata_diagnosis, "second rater file": second_rater_file,
    "test row in its train part": fold_test_row_in_its_train_part,
    "test row in another test part": fold_test_row_in_another_test_part,
    "row for unknown image": row_for_unknown_image, "other patient id": other_patient_id, "bomb mask": bomb_mask,
    "no annotation file": no_annotation_file}
SILENT_ITERATIONS = 40


def test_changes_that_used_to_load_silently_are_reported(release: Path, tmp_path: Path) -> None:
    rng = random.Random(24)
    kinds = [*SILENT, *(rng.choice(list(SILENT)) for _ in range(SILENT_ITERATIONS - len(SILENT)))]
    start = time.perf_counter()
    for done, kind in enumerate(kinds):
        if done >= len(SILENT) and time.perf_counter() - start > TIME_LIMIT_S:
            break
        root = tmp_path / f"copy{done}"
        shutil.copytree(release, root)
        expected = SILENT[kind](root, rng)
        try:
            db = load_dermxdb(root)
        except DermXDBError as error:
            assert not expected.kind and expected.name in str(error), (kind, error)
            continue
        named = [i for i in db.report.issues if expected.name in str(i)]
        assert db.report.counts[expected.kind] >= expected.count and len(named) >= expected.count, \
            (kind, expected, str(db.report))
        with pytest.raises(DermXDBError):
            load_dermxdb(root, strict=True)
        shutil.rmtree(root)


def test_a_mask_drawn_in_its_alpha_channel_reads_the_same(release: Path, tmp_path: Path) -> None:
    rng = random.Random(7)
    db = load_dermxdb(release)
    root = tmp_path / "alpha"
    shutil.copytree(release, root)
    for path in rng.sample(sorted(root.glob("masks/masks/*.png")), 5):
        lesion = np.asarray(Image.open(path)) > 127
        rgba = np.zeros((*lesion.shape, 4), np.uint8)
        rgba[..., :3] = rng.choice([255, 200])  # a grey or white mask, its lesion in the alpha channel only
        rgba[..., 3] = lesion * 255
        Image.fromarray(rgba, "RGBA").save(path)
    changed = load_dermxdb(root, strict=True)
    for stem in db.stems(with_metadata=False):
        assert np.array_equal(changed.rater_stack(stem, source="png"), db.rater_stack(stem, source="png"))
