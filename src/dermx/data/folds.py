"""DermXDB's patient-grouped folds, checked against each other and the images before anything uses them.

``folds/metadata_fold_<k>_train.csv`` and ``..._test.csv`` name the images of each part of fold k and
their patients. A fold is meant to be an honest test: no image and no patient on both sides, every
image in exactly one test part, one patient id per image. :func:`assemble_folds` reports (or, with
``strict``, raises on) each way the files can break that, naming the file and line:

- a fold with only one of its two files (fold left out);
- a row for an image without annotation file (row skipped), an image listed twice in one file (second
  row skipped);
- an image whose patient id differs between rows or files (the id most rows give kept, each other row
  reported);
- an image in both the train and the test part of one fold, an image in the test parts of two folds
  (its first fold kept as its ``fold``), a patient with images in both parts of one fold.

The parts are kept as the files give them otherwise: training on a fold whose test part shares an image
or a patient with its training part is refused by the data module
(:class:`dermx.train.datamodule.DermXDataModule`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from dermx.data.reader import FoldFile
from dermx.data.records import LoadReport
from dermx.text import shorten


@dataclass(frozen=True)
class Fold:
    index: int
    train: tuple[str, ...]
    test: tuple[str, ...]


@dataclass(frozen=True)
class FoldAssignment:
    """The complete folds, each image's patient id, and the fold whose test part holds each image."""

    folds: dict[int, Fold]
    patients: dict[str, int]
    test_fold: dict[str, int]


def _listed(part: FoldFile, known: Collection[str], claims: dict[str, list[tuple[int, Path, int]]],
            report: LoadReport, strict: bool) -> tuple[str, ...]:
    """The images of one fold file, in file order: unknown and repeated images reported and skipped,
    each row's patient id added to ``claims`` (stem -> [(patient, file, line)])."""
    seen: dict[str, int] = {}
    stems: list[str] = []
    for line, stem, patient in part.rows:
        name = shorten(stem)
        if stem not in known:
            report.add(part.path, f"line {line}: row for image {name!r}, which has no annotation file: skipped",
                       kind="fold row for unknown image", strict=strict)
            continue
        if stem in seen:
            report.add(part.path, f"line {line}: image {name!r} listed again (first on line {seen[stem]}): skipped",
                       kind="duplicate fold row", strict=strict)
            continue
        seen[stem] = line
        stems.append(stem)
        if patient is not None:
            claims.setdefault(stem, []).append((patient, part.path, line))
    return tuple(stems)


def _patients(claims: dict[str, list[tuple[int, Path, int]]], report: LoadReport, strict: bool) -> dict[str, int]:
    """Each image's patient id: the one most of its rows give (the first of equally frequent ones); each
    row giving another is reported."""
    patients: dict[str, int] = {}
    for stem, rows in claims.items():
        counts = Counter(patient for patient, _, _ in rows)
        kept, n = counts.most_common(1)[0]  # ties: the first seen (most_common is stable)
        patients[stem] = kept
        for patient, path, line in rows:
            if patient != kept:
                report.add(path, f"line {line}: image {shorten(stem)!r} has patient id {patient}, but {kept} in {n} "
                           f"other row(s) of the fold files: {kept} kept", kind="patient id mismatch", strict=strict)
    return patients


def _check_fold(fold: Fold, path: Path, patients: dict[str, int], report: LoadReport, strict: bool) -> None:
    """Report images and patients on both sides of one fold (``path``: its test file)."""
    train = set(fold.train)
    for stem in fold.test:
        if stem in train:
            report.add(path, f"image {shorten(stem)!r} is in both the train and the test part of fold {fold.index}",
                       kind="image in train and test", strict=strict)
    sides: dict[int, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for side, stems in enumerate((fold.train, fold.test)):
        for stem in stems:
            if stem in patients:
                sides[patients[stem]][side].append(stem)
    for patient, (in_train, in_test) in sorted(sides.items()):
        if in_train and in_test:
            shown = [shorten(s) for s in (*in_train[:2], *in_test[:2])]
            report.add(path, f"patient {patient} has images in both parts of fold {fold.index}: {len(in_train)} in "
                       f"train, {len(in_test)} in test (e.g. {', '.join(shown)})",
                       kind="patient in train and test", strict=strict)


def assemble_folds(files: dict[int, dict[str, FoldFile]], known: Collection[str], folder: Path,
                   report: LoadReport, *, strict: bool = False) -> FoldAssignment:
    """The folds of ``files`` (:func:`dermx.data.reader.read_folds`) over the ``known`` images (those
    with an annotation file), every problem reported (module docstring); ``folder``: the folds folder,
    named by a fold's missing file."""
    folds: dict[int, Fold] = {}
    claims: dict[str, list[tuple[int, Path, int]]] = {}
    test_fold: dict[str, int] = {}
    for k, parts in sorted(files.items()):
        if set(parts) != {"train", "test"}:
            missing = "train" if "test" in parts else "test"
            report.add(folder, f"fold {k} has no {missing} file", kind="incomplete fold", strict=strict)
            continue
        train, test = (_listed(parts[p], known, claims, report, strict) for p in ("train", "test"))
        folds[k] = Fold(k, train, test)
        for stem in test:
            if stem in test_fold:
                report.add(parts["test"].path, f"image {shorten(stem)!r} is in the test parts of folds "
                           f"{test_fold[stem]} and {k}: fold {test_fold[stem]} kept as its fold",
                           kind="image in two test folds", strict=strict)
            else:
                test_fold[stem] = k
    patients = _patients(claims, report, strict)
    for k, fold in folds.items():
        _check_fold(fold, files[k]["test"].path, patients, report, strict)
    return FoldAssignment(folds, patients, test_fold)
