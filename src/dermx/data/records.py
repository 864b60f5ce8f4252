"""Typed records of a DermXDB release: images, ratings, shapes, and the load report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

Point = tuple[float, float]
#: One closed outline: an ``(n, 2)`` float64 array of its (x, y) points (compact: a database holds every
#: outline of every image).
Ring = NDArray[np.float64]


class Pass(StrEnum):
    """Whether a rating is a rater's first look at an image or the repeat (intra-rater) pass."""

    FIRST = "first"
    REPEAT = "repeat"


@dataclass(frozen=True, slots=True)
class BoundingBox:
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True, slots=True, eq=False)
class Shape:
    """One outlined instance of a characteristic: one or more rings, filled with the even-odd rule.
    Compared and hashed by identity (its rings are arrays)."""

    name: str
    rings: tuple[Ring, ...]
    bounding_box: BoundingBox | None = None
    attributes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rating:
    """One annotation file: what one rater said about one image.

    ``rater`` is the rater's identity (``labeller3``), the same for both passes; ``annotator`` is the
    file prefix (``labeller32`` for rater 3's repeat pass).
    """

    path: Path
    stem: str
    annotator: str
    rater: str
    pass_: Pass
    width: int
    height: int
    diagnoses: tuple[str, ...]
    tags: tuple[str, ...]
    low_quality: bool
    shapes: tuple[Shape, ...]

    @property
    def characteristics(self) -> frozenset[str]:
        """The characteristics this rater outlined (any kind of localised name)."""
        return frozenset(s.name for s in self.shapes)

    @property
    def diagnosis(self) -> str | None:
        """The rater's diagnosis: the first diagnosis tag, ``None`` when there is none."""
        return self.diagnoses[0] if self.diagnoses else None

    @property
    def empty(self) -> bool:
        return not (self.diagnoses or self.tags or self.shapes or self.low_quality)

    def shapes_of(self, characteristic: str) -> tuple[Shape, ...]:
        return tuple(s for s in self.shapes if s.name == characteristic)


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """An image of the release; metadata fields are ``None`` for images outside ``metadata.csv``.

    ``fold`` is the index of the fold whose test set holds the image.
    """

    stem: str
    width: int
    height: int
    diagnosis: str | None = None
    dataset: str | None = None
    skin_tone: str | None = None
    age: str | None = None
    patient_id: int | None = None
    fold: int | None = None
    current_filename: str | None = None
    original_filename: str | None = None

    @property
    def has_metadata(self) -> bool:
        return self.diagnosis is not None

    @property
    def patient(self) -> str:
        """The image's patient group: ``patient-<id>`` from the fold files, else the image's own stem (an
        image without a patient id is a patient of its own). Splits, bootstraps and the test-set rules
        group images by it."""
        return f"patient-{self.patient_id}" if self.patient_id is not None else self.stem


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found while loading: the file it concerns and what is wrong with it."""

    path: Path
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


class DermXDBError(ValueError):
    """Raised on bad input when loading with ``strict=True`` (and on unrecoverable input always)."""


@dataclass
class LoadReport:
    """What loading found wrong or skipped; nothing is dropped without being listed here."""

    issues: list[Issue] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, path: Path, problem: str, *, kind: str, strict: bool) -> None:
        issue = Issue(path, problem)
        if strict:
            raise DermXDBError(str(issue))
        self.issues.append(issue)
        self.counts[kind] += 1

    @property
    def ok(self) -> bool:
        return not self.issues

    def __str__(self) -> str:
        if self.ok:
            return "load report: no problems"
        lines = [f"load report: {len(self.issues)} problem(s)"]
        lines += [f"  {kind}: {n}" for kind, n in sorted(self.counts.items())]
        lines += [f"  - {issue}" for issue in self.issues[:20]]
        if len(self.issues) > 20:
            lines.append(f"  ... and {len(self.issues) - 20} more")
        return "\n".join(lines)
