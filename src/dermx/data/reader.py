"""Read a DermXDB folder exactly as published: annotation JSON, metadata, folds and mask files.

Layout (see docs/design.md, section 1)::

    annotations/labeller{N}_{stem}.json
    masks/masks/labeller{N}_{stem}_{Characteristic}.png   (merged masks)
    masks/masks/labeller{N}_{stem}_{NNNNN}.png            (leftover instance masks: ignored, counted)
    metadata.csv                                          (';'-separated)
    folds/metadata_fold_{k}_{train,test}.csv              (','-separated)

A file stem splits at the first ``_`` into annotator and image stem; a mask stem splits at the last
``_`` into (annotator, image stem) and characteristic. Every annotation file and CSV row is checked
against its schema in :mod:`dermx.data.schema` before it is read. Problems are collected in a
:class:`~dermx.data.records.LoadReport` (or raised at once with ``strict=True``), each naming its file
(and the failing field or line); nothing is dropped without being counted there.
"""

from __future__ import annotations

import codecs
import csv
import gc
import io
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from dermx import vocab
from dermx.data import schema
from dermx.data.records import (
    BoundingBox,
    LoadReport,
    Pass,
    Rating,
    Ring,
    Shape,
)
from dermx.data.schema import AnnotationFileJSON, PointJSON

ANNOTATIONS_DIR = "annotations"
MASKS_DIR = Path("masks") / "masks"
METADATA_FILE = "metadata.csv"
FOLDS_DIR = "folds"
_ANNOTATOR = re.compile(r"^labeller(\d+)$")
_INSTANCE_TOKEN = re.compile(r"^\d{5}$")
_FOLD_FILE = re.compile(r"^metadata_fold_(\d+)_(train|test)\.csv$")

MaskKey = tuple[str, str, str]
"""(annotator, image stem, characteristic) of a merged mask."""


def split_annotator(annotator: str) -> tuple[str, Pass]:
    """``labeller3`` -> (``labeller3``, first); ``labeller32`` -> (``labeller3``, repeat).

    DermXDB names rater N's repeat pass ``labeller{N}2`` (N = 1..8).
    """
    match = _ANNOTATOR.match(annotator)
    if match is None:
        raise ValueError(f"not a DermXDB annotator name: {annotator!r}")
    number = match.group(1)
    if len(number) >= 2 and number.endswith("2"):
        return f"labeller{number[:-1]}", Pass.REPEAT
    return annotator, Pass.FIRST


def split_file_stem(stem: str) -> tuple[str, str]:
    """``labeller1_016013HB`` -> (``labeller1``, ``016013HB``): split at the first ``_``."""
    annotator, sep, image = stem.partition("_")
    if not sep or not image:
        raise ValueError(f"file name {stem!r} is not of the form labeller<N>_<image>")
    return annotator, image


_XY = itemgetter("x", "y")

Bounds = tuple[float, float, float, float]
"""(x min, y min, x max, y max) of a shape's points."""


def _rings(paths: list[list[PointJSON]]) -> tuple[list[Ring], Bounds | None]:
    """Validated point paths as rings of (x, y), and the bounds of the rings of >= 3 points.

    Rings of fewer than 3 points are kept here (the caller reports and drops them); the loops run in
    C (``map``, ``zip``, ``min``), which keeps parsing within 2x of a bare ``json.load``.
    """
    rings: list[Ring] = []
    corners: list[Bounds] = []
    for path in paths:
        ring = tuple(map(_XY, path))
        rings.append(ring)
        if len(ring) >= 3:
            xs, ys = zip(*ring, strict=True)
            corners.append((min(xs), min(ys), max(xs), max(ys)))
    if not corners:
        return rings, None
    if len(corners) == 1:
        return rings, corners[0]
    x0, y0, x1, y1 = zip(*corners, strict=True)
    return rings, (min(x0), min(y0), max(x1), max(y1))


def _placement_problem(bounds: Bounds, width: int, height: int) -> str | None:
    """Why an outline with these bounds cannot be right on a width x height image, or ``None``.

    It cannot when it lies entirely outside [0, width] x [0, height] (it covers no pixel), or when it
    reaches more than one image size beyond an edge (outside [-width, 2 width] x [-height, 2 height]:
    no annotation tool draws there, and such coordinates are corrupt; the release's outlines reach at
    most a third of the size beyond).
    """
    x0, y0, x1, y1 = bounds
    if x1 < 0 or y1 < 0 or x0 > width or y0 > height:
        return "lies entirely outside"
    if x0 < -width or y0 < -height or x1 > 2 * width or y1 > 2 * height:
        return "reaches more than one image size beyond the edges of"
    return None


def _validated(path: Path, raw: bytes, report: LoadReport, strict: bool
               ) -> tuple[AnnotationFileJSON, list[int]] | None:
    """The file checked against :data:`schema.ANNOTATION_FILE`, and each kept annotation's index.

    An annotation that fails the schema is reported (with the failing field) and skipped; a failure
    outside ``annotations[i]`` (not JSON, no ``image.width``, ``annotations`` not a list) rejects the
    whole file.
    """
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        data = schema.ANNOTATION_FILE.validate_json(raw)
        return data, list(range(len(data["annotations"])))
    except ValidationError as error:
        errors = error.errors()
    per_annotation: dict[int, list[ErrorDetails]] = defaultdict(list)
    whole_file: list[ErrorDetails] = []
    for item in errors:
        location = item["loc"]
        if len(location) >= 2 and location[0] == "annotations" and isinstance(location[1], int):
            per_annotation[location[1]].append({**item, "loc": location[2:]})
        else:
            whole_file.append(item)
    if not whole_file:
        try:
            document = json.loads(raw)  # valid JSON: only some annotations failed
        except (ValueError, RecursionError) as error:  # what pydantic's parser took, Python's refused
            whole_file.append({"type": "json_invalid", "loc": (), "msg": str(error), "input": raw})
    if whole_file:
        report.add(path, f"invalid annotation JSON ({schema.describe(whole_file)})", kind="invalid json",
                   strict=strict)
        return None
    annotations = document["annotations"]
    for index, problems in sorted(per_annotation.items()):
        name = annotations[index].get("name") if isinstance(annotations[index], dict) else None
        label = f" ({name!r})" if isinstance(name, str) else ""
        report.add(path, f"annotation {index}{label}: {schema.describe(problems)}: skipped",
                   kind="invalid annotation", strict=strict)
    kept = [i for i in range(len(annotations)) if i not in per_annotation]
    document["annotations"] = [annotations[i] for i in kept]
    try:
        return schema.ANNOTATION_FILE.validate_json(json.dumps(document)), kept
    except ValidationError as error:  # only if the two JSON parsers read the file differently
        report.add(path, f"invalid annotation JSON ({schema.describe(error.errors())})", kind="invalid json",
                   strict=strict)
        return None


def parse_annotation(path: Path, report: LoadReport, *, strict: bool = False) -> Rating | None:
    """Parse one annotation file; ``None`` (with an issue in ``report``) when it cannot be read.

    The file is validated against :mod:`dermx.data.schema`. Beyond the schema, an annotation with
    neither a tag nor an outline, a ring of fewer than 3 points, and an outline that cannot be right
    on the image (:func:`_placement_problem`) are reported and skipped.
    """
    try:
        annotator, stem = split_file_stem(path.stem)
        rater, pass_ = split_annotator(annotator)
    except ValueError as error:
        report.add(path, str(error), kind="bad file name", strict=strict)
        return None
    try:
        raw = path.read_bytes()
    except OSError as error:
        report.add(path, f"unreadable file ({error})", kind="invalid json", strict=strict)
        return None
    validated = _validated(path, raw, report, strict)
    if validated is None:
        return None
    data, indices = validated
    width, height = data["image"]["width"], data["image"]["height"]
    diagnoses: list[str] = []
    tags: list[str] = []
    shapes: list[Shape] = []
    low_quality = False
    for index, annotation in zip(indices, data["annotations"], strict=True):
        name = vocab.canonical(annotation["name"])
        if "tag" in annotation:
            kind = vocab.KIND.get(name)
            if kind is vocab.Kind.DIAGNOSIS:
                diagnoses.append(name)
            elif kind is vocab.Kind.QUALITY:
                low_quality = True
            else:
                tags.append(name)
            continue
        if "polygon" in annotation:
            paths = [annotation["polygon"]["path"]]
        elif "complex_polygon" in annotation:
            paths = annotation["complex_polygon"]["path"]
        else:
            report.add(path, f"annotation {index} ({name!r}) has neither a tag nor a polygon",
                       kind="unknown annotation", strict=strict)
            continue
        rings, bounds = _rings(paths)
        short = [len(r) for r in rings if len(r) < 3]
        if short:
            report.add(path, f"annotation {index} ({name!r}): ring with {short[0]} point(s) (< 3) skipped",
                       kind="bad polygon", strict=strict)
            rings = [r for r in rings if len(r) >= 3]
        if bounds is None:
            continue
        if problem := _placement_problem(bounds, width, height):
            report.add(path, f"annotation {index} ({name!r}): polygon {problem} the {width}x{height} image "
                       f"(x {bounds[0]:g}..{bounds[2]:g}, y {bounds[1]:g}..{bounds[3]:g}): skipped",
                       kind="polygon outside image", strict=strict)
            continue
        box = annotation.get("bounding_box")
        shapes.append(Shape(
            name=name,
            rings=tuple(rings),
            bounding_box=BoundingBox(**box) if box else None,
            attributes=tuple(vocab.canonical(a) for a in annotation.get("attributes") or ()),
        ))
    return Rating(path=path, stem=stem, annotator=annotator, rater=rater, pass_=pass_, width=width,
                  height=height, diagnoses=tuple(diagnoses), tags=tuple(tags), low_quality=low_quality,
                  shapes=tuple(shapes))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector (restored on exit, even on error).

    Parsing allocates millions of point tuples, each of which would trigger and then survive the
    collector's generation scans (a fifth of the parse time on the release); the records hold no
    reference cycles, so there is nothing for it to find.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_annotations(root: Path, report: LoadReport, *, strict: bool = False) -> list[Rating]:
    """Parse every ``annotations/*.json`` file, in sorted order."""
    folder = root / ANNOTATIONS_DIR
    with _collector_paused():
        ratings = (parse_annotation(p, report, strict=strict) for p in sorted(folder.glob("*.json")))
        return [r for r in ratings if r is not None]


def _decode(path: Path, raw: bytes, report: LoadReport, strict: bool) -> str:
    """The text of a CSV file (UTF-8, an optional byte-order mark dropped). A line holding bytes that
    are not UTF-8 is reported and emptied, so its row is skipped and line numbers stay true."""
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    lines = raw.split(b"\n")
    for number, line in enumerate(lines, start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as error:
            report.add(path, f"line {number}: byte 0x{line[error.start]:02x} at column {error.start + 1} is not "
                       f"UTF-8: line skipped", kind="not utf-8", strict=strict)
            lines[number - 1] = b""
    return b"\n".join(lines).decode("utf-8")


def read_csv_rows(path: Path, delimiter: str, row_type: type, report: LoadReport, *, strict: bool = False
                  ) -> list[tuple[int, dict[str, Any]]] | None:
    """The rows of a CSV file that pass the row schema ``row_type`` (:mod:`dermx.data.schema`), each
    with its line number.

    ``None`` (reported) when the file cannot be read or lacks a required column; a missing optional
    column is reported once. A row failing the schema (a short row, a blank required cell, a value of
    the wrong type, extra cells) is reported with the failing field and skipped.
    """
    adapter = schema.ROW_SCHEMAS[row_type]
    try:
        text = _decode(path, path.read_bytes(), report, strict)
    except OSError as error:
        report.add(path, f"unreadable file ({error})", kind="unreadable file", strict=strict)
        return None
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, restkey=schema.EXTRA_CELLS,
                            restval=schema.MISSING_CELL)
    header = reader.fieldnames or []
    required, optional = schema.columns(row_type)
    if missing := sorted(required - set(header)):
        report.add(path, f"needs column(s) {missing}, has {header}: file skipped", kind="missing column",
                   strict=strict)
        return None
    for column in sorted(optional - set(header)):
        report.add(path, f"no {column!r} column: {column} unknown for every row", kind="missing column",
                   strict=strict)
    rows: list[tuple[int, dict[str, Any]]] = []
    for row in reader:
        try:
            rows.append((reader.line_num, dict(adapter.validate_python(row))))
        except ValidationError as error:
            report.add(path, f"line {reader.line_num}: {schema.describe(error.errors())}: row skipped",
                       kind="invalid row", strict=strict)
    return rows


def read_metadata(root: Path, report: LoadReport, *, strict: bool = False) -> dict[str, dict[str, Any]]:
    """``metadata.csv`` rows (:data:`schema.MetadataRow`) keyed by image stem (``current_filename``
    without its extension), with the diagnosis in its release spelling."""
    path = root / METADATA_FILE
    if not path.is_file():
        report.add(path, "metadata.csv is missing: no reference diagnoses", kind="missing file",
                   strict=strict)
        return {}
    metadata: dict[str, dict[str, Any]] = {}
    for line, row in read_csv_rows(path, ";", schema.MetadataRow, report, strict=strict) or ():
        stem = Path(row["current_filename"]).stem
        if stem in metadata:
            report.add(path, f"line {line}: duplicate image {stem!r}", kind="duplicate metadata",
                       strict=strict)
            continue
        row["diagnosis"] = vocab.canonical(row["diagnosis"])
        metadata[stem] = row
    return metadata


def read_folds(root: Path, report: LoadReport, *, strict: bool = False
               ) -> tuple[dict[int, dict[str, tuple[str, ...]]], dict[str, int]]:
    """Fold files (rows of :data:`schema.FoldRow`) as ``{k: {"train": stems, "test": stems}}``, and
    patient ids by stem."""
    folds: dict[int, dict[str, tuple[str, ...]]] = {}
    patients: dict[str, int] = {}
    folder = root / FOLDS_DIR
    for path in sorted(folder.glob("*.csv")):
        match = _FOLD_FILE.match(path.name)
        if match is None:
            report.add(path, "not a fold file (metadata_fold_<k>_<train|test>.csv)", kind="unknown file",
                       strict=strict)
            continue
        rows = read_csv_rows(path, ",", schema.FoldRow, report, strict=strict)
        if rows is None:
            continue
        stems = tuple(Path(row["current_filename"]).stem for _, row in rows)
        folds.setdefault(int(match.group(1)), {})[match.group(2)] = stems
        for stem, (_, row) in zip(stems, rows, strict=True):
            if row.get("patient_id") is not None:
                patients[stem] = row["patient_id"]
    return folds, patients


def index_masks(root: Path, report: LoadReport, *, strict: bool = False
                ) -> tuple[dict[MaskKey, Path], int]:
    """Merged mask files keyed by (annotator, stem, characteristic), and the count of ignored
    leftover instance masks (last token of five digits)."""
    masks: dict[MaskKey, Path] = {}
    ignored = 0
    for path in sorted((root / MASKS_DIR).glob("*.png")):
        head, _, last = path.stem.rpartition("_")
        if _INSTANCE_TOKEN.match(last):
            ignored += 1
            continue
        try:
            annotator, stem = split_file_stem(head)
        except ValueError as error:
            report.add(path, str(error), kind="bad file name", strict=strict)
            continue
        masks[(annotator, stem, vocab.canonical(last))] = path
    return masks, ignored


def localised_triples(ratings: Iterable[Rating]) -> set[MaskKey]:
    """(annotator, stem, characteristic) for every characteristic a rating outlined."""
    return {(r.annotator, r.stem, c) for r in ratings for c in r.characteristics}
