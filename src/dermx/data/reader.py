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
import os
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from dermx import vocab
from dermx.data import schema
from dermx.data.records import (
    BoundingBox,
    DermXDBError,
    LoadReport,
    Pass,
    Rating,
    Ring,
    Shape,
)
from dermx.data.schema import AnnotationFileJSON, PointJSON
from dermx.text import shorten

ANNOTATIONS_DIR = "annotations"
MASKS_DIR = Path("masks") / "masks"
METADATA_FILE = "metadata.csv"
FOLDS_DIR = "folds"
_ANNOTATOR = re.compile(r"^labeller([0-9]+)$")
_INSTANCE_TOKEN = re.compile(r"^\d{5}$")
_FOLD_FILE = re.compile(r"^metadata_fold_(\d+)_(train|test)\.csv$")

MaskKey = tuple[str, str, str]
"""(annotator, image stem, characteristic) of a merged mask."""


def normal_annotator(annotator: str) -> str:
    """The one spelling of an annotator name: ``labeller`` and the number in ASCII digits without
    leading zeros (``labeller01`` and a full-width ``labeller１`` are ``labeller1``; Unicode
    compatibility forms are folded, NFKC); :class:`ValueError` for anything else."""
    match = _ANNOTATOR.match(unicodedata.normalize("NFKC", annotator))
    if match is None:
        raise ValueError(f"not a DermXDB annotator name: {shorten(annotator)!r} (labeller<N>, N in ASCII digits)")
    return f"labeller{int(match.group(1))}"


def split_annotator(annotator: str) -> tuple[str, Pass]:
    """``labeller3`` -> (``labeller3``, first); ``labeller32`` -> (``labeller3``, repeat).

    DermXDB names rater N's repeat pass ``labeller{N}2`` (N = 1..8). ``annotator`` is read through
    :func:`normal_annotator` first.
    """
    annotator = normal_annotator(annotator)
    number = annotator.removeprefix("labeller")
    if len(number) >= 2 and number.endswith("2"):
        return f"labeller{number[:-1]}", Pass.REPEAT
    return annotator, Pass.FIRST


def split_file_stem(stem: str) -> tuple[str, str]:
    """``labeller1_016013HB`` -> (``labeller1``, ``016013HB``): split at the first ``_``."""
    annotator, sep, image = stem.partition("_")
    if not sep or not image:
        raise ValueError(f"file name {shorten(stem)!r} is not of the form labeller<N>_<image>")
    return annotator, image


_XY = itemgetter("x", "y")

Bounds = tuple[float, float, float, float]
"""(x min, y min, x max, y max) of a shape's points."""


def _rings(paths: list[list[PointJSON]]) -> tuple[list[Ring], Bounds | None]:
    """Validated point paths as rings, ``(n, 2)`` float64 arrays of (x, y), and the bounds of the rings
    of >= 3 points.

    Rings of fewer than 3 points are kept here (the caller reports and drops them). A ring is an array,
    not a tuple of (x, y) tuples: a database holds every outline of every image for as long as it is
    open, and a tuple of two Python floats costs about 140 bytes a point against 16 (measured on 1,500
    synthetic images, 1.55 million points: 224 MB held; benchmarks/eval_memory.py).
    """
    rings: list[Ring] = []
    corners: list[Bounds] = []
    for path in paths:
        ring = np.array(tuple(map(_XY, path)), dtype=np.float64).reshape(-1, 2)
        rings.append(ring)
        if len(ring) >= 3:
            (x0, y0), (x1, y1) = ring.min(axis=0).tolist(), ring.max(axis=0).tolist()
            corners.append((x0, y0, x1, y1))
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
        label = f" ({shorten(name)!r})" if isinstance(name, str) else ""
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


def _known(name: str, path: Path, where: str, outcome: str, report: LoadReport, strict: bool) -> str | None:
    """The release spelling of a name read from ``path``; ``None`` when it is in no list of
    :mod:`dermx.vocab`, reported as ``<where>: unknown name '...' (nearest known name: '...'): <outcome>``.

    A misspelt diagnosis must not pass as a tag (the rating would lose its diagnosis without a word)."""
    if vocab.kind_of(name) is None:
        report.add(path, f"{where}: {vocab.unknown_name(name)}: {outcome}", kind="unknown name", strict=strict)
        return None
    return vocab.canonical(name)


def parse_annotation(path: Path, report: LoadReport, *, strict: bool = False) -> Rating | None:
    """Parse one annotation file; ``None`` (with an issue in ``report``) when it cannot be read.

    The file is validated against :mod:`dermx.data.schema`. Beyond the schema, an annotation with
    neither a tag nor an outline, a ring of fewer than 3 points, and an outline that cannot be right
    on the image (:func:`_placement_problem`) are reported and skipped.
    """
    try:
        annotator, stem = split_file_stem(path.stem)
        annotator = normal_annotator(annotator)
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
        name = _known(annotation["name"], path, f"annotation {index}", "skipped", report, strict)
        if name is None:
            continue
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
        attributes = (_known(a, path, f"annotation {index} ({name!r}): attribute", "attribute left out", report,
                             strict) for a in annotation.get("attributes") or ())
        shapes.append(Shape(
            name=name,
            rings=tuple(rings),
            bounding_box=BoundingBox(**box) if box else None,
            attributes=tuple(a for a in attributes if a is not None),
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


def annotation_files(root: Path) -> list[Path]:
    """The ``annotations/*.json`` files, sorted; :class:`DermXDBError` naming the one cause when the
    folder cannot be listed (permission denied, not a folder) or holds no ``.json`` file: nothing
    can load then, and the follow-on problems (every metadata row and mask without its annotation)
    would bury the cause."""
    folder = root / ANNOTATIONS_DIR
    try:
        with os.scandir(folder) as entries:
            files = [folder / name for name in sorted(e.name for e in entries if e.name.endswith(".json"))]
    except OSError as error:
        raise DermXDBError(f"{folder}: cannot list the annotation folder ({error.strerror or error})") from error
    if not files:
        raise DermXDBError(f"{folder}: no annotation files (labeller<N>_<image>.json)")
    return files


def read_annotations(root: Path, report: LoadReport, *, strict: bool = False) -> list[Rating]:
    """Parse every ``annotations/*.json`` file, in sorted order (:func:`annotation_files`).

    Two files of one (rater, image, pass) once their annotator names are read alike
    (:func:`normal_annotator`: ``labeller01_x.json`` beside ``labeller1_x.json``) are a problem: the
    file spelt as the release spells it is kept, the other reported and skipped, so that a copy never
    becomes another rater. When no file at all can be read, that is the one error raised.
    """
    files = annotation_files(root)
    with _collector_paused():
        parsed = [r for r in (parse_annotation(p, report, strict=strict) for p in files) if r is not None]
    if not parsed:
        raise DermXDBError(f"{root / ANNOTATIONS_DIR}: none of the {len(files)} annotation files could be read "
                           f"(first: {report.issues[0] if report.issues else 'no problem recorded'})")
    by_key: dict[tuple[str, str], list[Rating]] = defaultdict(list)
    for rating in parsed:
        by_key[(rating.annotator, rating.stem)].append(rating)
    ratings = []
    for (annotator, stem), copies in by_key.items():
        kept = next((r for r in copies if r.path.name.startswith(f"{annotator}_")), copies[0])
        ratings.append(kept)
        for other in copies:
            if other is not kept:
                report.add(other.path, f"a second file of {annotator} ({other.pass_} pass) on image "
                           f"{shorten(stem)!r}, beside {kept.path.name}: skipped", kind="duplicate rating",
                           strict=strict)
    return ratings


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


def _first_row_line(lines: list[str], after: int) -> int:
    """The number of the first line after line ``after`` that is not blank (the CSV reader skips blank
    lines)."""
    line = after + 1
    while line <= len(lines) and not lines[line - 1].strip("\r\n"):
        line += 1
    return line


def _report_lost_rows(path: Path, lines: list[str], first: int, last: int, why: str, image_column: int,
                      delimiter: str, report: LoadReport, strict: bool) -> None:
    """Report each non-blank line from ``first`` to ``last`` as a row lost, naming its image (the cell
    of ``image_column`` when the line is split at ``delimiter`` without quoting): the first line with
    ``why``."""
    for number in range(first, last + 1):
        line = lines[number - 1].strip("\r\n")
        if not line:
            continue
        cells = line.split(delimiter)
        image = cells[image_column].strip().strip('"') if image_column < len(cells) else ""
        cause = why if number == first else f"swallowed by the row of line {first}"
        report.add(path, f"line {number}: {cause}: row of {shorten(image)!r} skipped", kind="lost row",
                   strict=strict)


def read_csv_rows(path: Path, delimiter: str, row_type: type, report: LoadReport, *, strict: bool = False
                  ) -> list[tuple[int, dict[str, Any]]] | None:
    """The rows of a CSV file that pass the row schema ``row_type`` (:mod:`dermx.data.schema`), each
    with its line number.

    ``None`` (reported) when the file cannot be read or lacks a required column; a missing optional
    column is reported once. A row failing the schema (a short row, a blank required cell, a value of
    the wrong type, extra cells) is reported with the failing field and skipped.

    Every row must be one line: no DermXDB cell holds a line break, so a row the CSV reader takes from
    several lines (or with a line break in a cell, when the quote is still open at the end of the file) is
    a quote opening a cell that swallows the lines after it: one stray ``"`` can join a whole file into
    one cell. Such a row is refused, and so is every line it swallowed, each reported with its line
    number and image: the rows read and the rows reported add up to the file's lines.
    """
    adapter = schema.ROW_SCHEMAS[row_type]
    try:
        text = _decode(path, path.read_bytes(), report, strict)
    except OSError as error:
        report.add(path, f"unreadable file ({error})", kind="unreadable file", strict=strict)
        return None
    lines = list(io.StringIO(text, newline=""))
    # typeshed takes any restval only with explicit fieldnames; csv fills short rows with any object
    reader = csv.DictReader(lines, delimiter=delimiter, restkey=schema.EXTRA_CELLS,  # type: ignore[call-overload]
                            restval=schema.MISSING_CELL)
    try:
        header = reader.fieldnames or []
    except csv.Error as error:
        report.add(path, f"unreadable header ({error}): file skipped", kind="invalid row", strict=strict)
        return None
    required, optional = schema.columns(row_type)
    if missing := sorted(required - set(header)):
        report.add(path, f"needs column(s) {missing}, has {shorten(str(header))}: file skipped",
                   kind="missing column", strict=strict)
        return None
    for column in sorted(optional - set(header)):
        report.add(path, f"no {column!r} column: {column} unknown for every row", kind="missing column",
                   strict=strict)
    image_column = header.index("current_filename") if "current_filename" in header else 0
    rows: list[tuple[int, dict[str, Any]]] = []
    last = reader.line_num
    try:
        for row in reader:
            first, last = _first_row_line(lines, last), reader.line_num
            if last > first or any(isinstance(v, str) and ("\n" in v or "\r" in v) for v in row.values()):
                _report_lost_rows(path, lines, first, last, f"a quote opens a cell running over the line end(s) to "
                                  f"line {last} (a stray '\"'?)", image_column, delimiter, report, strict)
                continue
            try:
                rows.append((last, dict(adapter.validate_python(row))))
            except ValidationError as error:
                report.add(path, f"line {last}: {schema.describe(error.errors())}: row skipped",
                           kind="invalid row", strict=strict)
    except csv.Error as error:  # e.g. a quoted cell longer than the CSV reader's field limit
        _report_lost_rows(path, lines, _first_row_line(lines, last), len(lines),
                          f"unreadable from here to the end of the file ({error})", image_column, delimiter,
                          report, strict)
    return rows


def read_metadata(root: Path, report: LoadReport, *, strict: bool = False) -> dict[str, dict[str, Any]]:
    """``metadata.csv`` rows (:data:`schema.MetadataRow`) keyed by image stem (``current_filename``
    without its extension), with the diagnosis in its release spelling.

    A diagnosis that is not one of the six reference classes (a misspelling, another disease) is
    reported here, with the nearest known name, and its row skipped: the image then has no reference
    diagnosis, rather than one no table or metric knows."""
    path = root / METADATA_FILE
    if not path.is_file():
        report.add(path, "metadata.csv is missing: no reference diagnoses", kind="missing file",
                   strict=strict)
        return {}
    metadata: dict[str, dict[str, Any]] = {}
    for line, row in read_csv_rows(path, ";", schema.MetadataRow, report, strict=strict) or ():
        stem = Path(row["current_filename"]).stem
        if stem in metadata:
            report.add(path, f"line {line}: duplicate image {shorten(stem)!r}", kind="duplicate metadata",
                       strict=strict)
            continue
        known = vocab.kind_of(row["diagnosis"]) is not None
        diagnosis = vocab.canonical(row["diagnosis"]) if known else row["diagnosis"]
        if diagnosis not in vocab.DIAGNOSES:
            why = (f"{diagnosis!r} is not one of the reference diagnoses {list(vocab.DIAGNOSES)}" if known
                   else vocab.unknown_name(diagnosis))
            report.add(path, f"line {line}: diagnosis: {why}: row skipped", kind="unknown name", strict=strict)
            continue
        metadata[stem] = {**row, "diagnosis": diagnosis}
    return metadata


@dataclass(frozen=True)
class FoldFile:
    """The rows of one fold file as read: (line number, image stem, patient id or ``None``)."""

    path: Path
    rows: tuple[tuple[int, str, int | None], ...]


def read_folds(root: Path, report: LoadReport, *, strict: bool = False) -> dict[int, dict[str, FoldFile]]:
    """Fold files (rows of :data:`schema.FoldRow`) as ``{k: {"train": file, "test": file}}``; checking
    them against each other and the images is :func:`dermx.data.folds.assemble_folds`'s."""
    folds: dict[int, dict[str, FoldFile]] = {}
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
        folds.setdefault(int(match.group(1)), {})[match.group(2)] = FoldFile(path, tuple(
            (line, Path(row["current_filename"]).stem, row.get("patient_id")) for line, row in rows))
    return folds


def index_masks(root: Path, report: LoadReport, *, strict: bool = False
                ) -> tuple[dict[MaskKey, Path], int]:
    """Merged mask files keyed by (annotator, stem, characteristic), and the count of ignored
    leftover instance masks (last token of five digits).

    Annotator names are read alike (:func:`normal_annotator`); a second file of one key is reported
    and skipped (the one spelt as the release spells it is kept). A characteristic in no list keeps its
    name: no outline matches it, which is reported as a mask without annotation."""
    masks: dict[MaskKey, Path] = {}
    ignored = 0
    for path in sorted((root / MASKS_DIR).glob("*.png")):
        head, _, last = path.stem.rpartition("_")
        if _INSTANCE_TOKEN.match(last):
            ignored += 1
            continue
        try:
            annotator, stem = split_file_stem(head)
            annotator = normal_annotator(annotator)
        except ValueError as error:
            report.add(path, str(error), kind="bad file name", strict=strict)
            continue
        key = (annotator, stem, vocab.canonical(last, warn=False))
        if key in masks:
            kept, other = (path, masks[key]) if path.name.startswith(f"{annotator}_") else (masks[key], path)
            report.add(other, f"a second mask of {annotator} on image {shorten(stem)!r} for {key[2]!r}, beside "
                       f"{kept.name}: skipped", kind="duplicate mask", strict=strict)
            path = kept
        masks[key] = path
    return masks, ignored


def localised_triples(ratings: Iterable[Rating]) -> set[MaskKey]:
    """(annotator, stem, characteristic) for every characteristic a rating outlined."""
    return {(r.annotator, r.stem, c) for r in ratings for c in r.characteristics}
