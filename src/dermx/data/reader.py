"""Read a DermXDB folder exactly as published: annotation JSON, metadata, folds and mask files.

Layout (see DESIGN.md section 1)::

    annotations/labeller{N}_{stem}.json
    masks/masks/labeller{N}_{stem}_{Characteristic}.png   (merged masks)
    masks/masks/labeller{N}_{stem}_{NNNNN}.png            (leftover instance masks: ignored, counted)
    metadata.csv                                          (';'-separated)
    folds/metadata_fold_{k}_{train,test}.csv              (','-separated)

A file stem splits at the first ``_`` into annotator and image stem; a mask stem splits at the last
``_`` into (annotator, image stem) and characteristic. Problems are collected in a
:class:`~dermx.data.records.LoadReport` (or raised at once with ``strict=True``); nothing is dropped
without being counted there.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dermx import vocab
from dermx.data.records import (
    BoundingBox,
    DermXDBError,
    LoadReport,
    Pass,
    Rating,
    Ring,
    Shape,
)

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


def _rings(annotation: dict[str, Any]) -> tuple[Ring, ...]:
    paths = [annotation["polygon"]["path"]] if "polygon" in annotation else annotation["complex_polygon"]["path"]
    return tuple(tuple((float(p["x"]), float(p["y"])) for p in path) for path in paths)


def parse_annotation(path: Path, report: LoadReport, *, strict: bool = False) -> Rating | None:
    """Parse one annotation file; ``None`` (with an issue in ``report``) when it cannot be read."""
    try:
        annotator, stem = split_file_stem(path.stem)
        rater, pass_ = split_annotator(annotator)
    except ValueError as error:
        report.add(path, str(error), kind="bad file name", strict=strict)
        return None
    try:
        with path.open("rb") as handle:
            data = json.load(handle)
        image = data["image"]
        width, height = int(image["width"]), int(image["height"])
        annotations = data["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        report.add(path, f"invalid annotation JSON ({type(error).__name__}: {error})",
                   kind="invalid json", strict=strict)
        return None
    diagnoses: list[str] = []
    tags: list[str] = []
    shapes: list[Shape] = []
    low_quality = False
    for index, annotation in enumerate(annotations):
        name = vocab.canonical(annotation.get("name", ""))
        if "tag" in annotation:
            kind = vocab.KIND.get(name)
            if kind is vocab.Kind.DIAGNOSIS:
                diagnoses.append(name)
            elif kind is vocab.Kind.QUALITY:
                low_quality = True
            else:
                tags.append(name)
            continue
        if "polygon" not in annotation and "complex_polygon" not in annotation:
            report.add(path, f"annotation {index} ({name!r}) has neither a tag nor a polygon",
                       kind="unknown annotation", strict=strict)
            continue
        try:
            rings = _rings(annotation)
        except (KeyError, TypeError, ValueError) as error:
            report.add(path, f"annotation {index} ({name!r}): malformed polygon ({error})",
                       kind="bad polygon", strict=strict)
            continue
        short = [len(r) for r in rings if len(r) < 3]
        if short:
            report.add(path, f"annotation {index} ({name!r}): ring with {short[0]} point(s) (< 3) skipped",
                       kind="bad polygon", strict=strict)
            rings = tuple(r for r in rings if len(r) >= 3)
            if not rings:
                continue
        box = annotation.get("bounding_box")
        shapes.append(Shape(
            name=name,
            rings=rings,
            bounding_box=BoundingBox(box["x"], box["y"], box["w"], box["h"]) if box else None,
            attributes=tuple(vocab.canonical(a) for a in annotation.get("attributes") or ()),
        ))
    return Rating(path=path, stem=stem, annotator=annotator, rater=rater, pass_=pass_, width=width,
                  height=height, diagnoses=tuple(diagnoses), tags=tuple(tags), low_quality=low_quality,
                  shapes=tuple(shapes))


def read_annotations(root: Path, report: LoadReport, *, strict: bool = False) -> list[Rating]:
    """Parse every ``annotations/*.json`` file, in sorted order."""
    folder = root / ANNOTATIONS_DIR
    ratings = (parse_annotation(p, report, strict=strict) for p in sorted(folder.glob("*.json")))
    return [r for r in ratings if r is not None]


def read_metadata(root: Path, report: LoadReport, *, strict: bool = False) -> dict[str, dict[str, str]]:
    """``metadata.csv`` rows keyed by image stem (``current_filename`` without its extension)."""
    path = root / METADATA_FILE
    if not path.is_file():
        report.add(path, "metadata.csv is missing: no reference diagnoses", kind="missing file",
                   strict=strict)
        return {}
    rows: dict[str, dict[str, str]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter=";")
        required = {"current_filename", "diagnosis"}
        if not required <= set(reader.fieldnames or ()):
            raise DermXDBError(f"{path}: needs columns {sorted(required)}, has {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            stem = Path(row["current_filename"]).stem
            if stem in rows:
                report.add(path, f"line {line}: duplicate image {stem!r}", kind="duplicate metadata",
                           strict=strict)
                continue
            row["diagnosis"] = vocab.canonical(row["diagnosis"])
            rows[stem] = row
    return rows


def read_folds(root: Path, report: LoadReport, *, strict: bool = False
               ) -> tuple[dict[int, dict[str, tuple[str, ...]]], dict[str, int]]:
    """Fold files as ``{k: {"train": stems, "test": stems}}``, and patient ids by stem."""
    folds: dict[int, dict[str, tuple[str, ...]]] = {}
    patients: dict[str, int] = {}
    folder = root / FOLDS_DIR
    for path in sorted(folder.glob("*.csv")):
        match = _FOLD_FILE.match(path.name)
        if match is None:
            report.add(path, "not a fold file (metadata_fold_<k>_<train|test>.csv)", kind="unknown file",
                       strict=strict)
            continue
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        stems = tuple(Path(row["current_filename"]).stem for row in rows)
        folds.setdefault(int(match.group(1)), {})[match.group(2)] = stems
        for row in rows:
            if row.get("patient_id", "").strip():
                patients[Path(row["current_filename"]).stem] = int(row["patient_id"])
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
