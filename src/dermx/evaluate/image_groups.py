"""Which group each test image belongs to: DermXDB's skin tone by default, or a user's own attribute read
from a CSV (``dermx evaluate --groups FILE``).

The groups of the benchmark's trust figures (:mod:`dermx.evaluate.benchmark.groups`,
:mod:`dermx.evaluate.benchmark.trust`) and of the leaderboard's deletion AUC per group are the values of
one image attribute, the images table's column :attr:`ImageGroups.by`:

- by default :data:`GROUP_BY` (``skin_tone``, from DermXDB's metadata: :func:`skin_tones`);
- with a groups file (:func:`read_groups`), the attribute its header names. The file is a CSV with exactly
  two columns: ``image`` (an image's stem, or a file name whose stem is taken: ``ISIC_01.jpg`` →
  ``ISIC_01``; only an image suffix of :data:`dermx.data.images.IMAGE_SUFFIXES` is dropped) and the
  attribute, e.g.::

      image,fitzpatrick
      ISIC_01.jpg,II
      ISIC_02,V

Either way an image without a value is in the group :data:`UNKNOWN`. Nothing is dropped silently:
:meth:`ImageGroups.coverage` counts the test images in ``unknown`` and the file's rows naming images that
are not test images (not an error: a file may describe a whole collection). A duplicate image, a missing
``image`` column, a header of other than two columns, a row of other than two fields or an empty cell is a
:class:`ValueError` naming the file and the line.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from dermx.data import DermXDB
from dermx.data.images import IMAGE_SUFFIXES

__all__ = ["GROUP_BY", "UNKNOWN", "ImageGroups", "coverage_message", "image_stem", "read_groups", "skin_tones"]

#: The attribute the groups are values of when no groups file is given (DermXDB's metadata).
GROUP_BY = "skin_tone"
#: The group of an image without a value.
UNKNOWN = "unknown"
#: Columns of the benchmark's images table an attribute may not be named after (the strata ``skin_tone`` and
#: ``age`` may: the file's values then replace DermXDB's); any name holding ``:`` is a per-class column.
RESERVED: frozenset[str] = frozenset({
    "model", "model_kind", "fold", "stem", "patient", "reference", "predicted", "correct", "confidence",
    "has_watermark", "dx_energy_watermark", "dx_energy_lesions", "area_watermark", "area_lesions",
    "experts_drawn_dice"})
#: How many names :meth:`ImageGroups.coverage` lists of each kind (the counts are always whole).
LISTED = 5


def image_stem(name: str) -> str:
    """An image's stem from its stem or file name (a folder part and an image suffix dropped)."""
    path = PurePath(name.strip())
    return path.stem if path.suffix.lower() in IMAGE_SUFFIXES else path.name


@dataclass(frozen=True)
class ImageGroups:
    """Each image's value of the attribute ``by`` (``values``: stem → value); ``file``: where they were read
    (``None``: DermXDB's metadata)."""

    by: str
    values: Mapping[str, str]
    file: str | None = None

    def label(self, stem: str) -> str:
        """The image's group: its value, or :data:`UNKNOWN`."""
        return self.values.get(stem, UNKNOWN)

    def labels(self, stems: Iterable[str]) -> list[str]:
        return [self.label(s) for s in stems]

    def coverage(self, stems: Iterable[str]) -> dict[str, Any]:
        """What the grouping covers of the test images ``stems``: ``unknown_images`` (test images without a
        value, grouped as ``unknown``) and, for a groups file (``file``: its name), its ``rows`` and
        ``not_in_benchmark`` (rows naming images that are not test images); up to :data:`LISTED` names of
        each, sorted."""
        tested = set(stems)
        unknown = sorted(tested - set(self.values))
        out: dict[str, Any] = {"by": self.by, "file": PurePath(self.file).name if self.file else None,
                               "unknown_images": len(unknown),
                               "unknown_examples": unknown[:LISTED]}
        if self.file is not None:
            extra = sorted(set(self.values) - tested)
            out.update(rows=len(self.values), not_in_benchmark=len(extra), not_in_benchmark_examples=extra[:LISTED])
        return out


def coverage_message(coverage: Mapping[str, Any]) -> str | None:
    """A warning line for a :meth:`ImageGroups.coverage` that left images out or named others; ``None``
    when the grouping covers exactly the test images."""
    said = []
    source = coverage["file"] or "DermXDB's metadata"
    if coverage["unknown_images"]:
        said.append(f"{coverage['unknown_images']} test image(s) have no {coverage['by']} in {source} and are "
                    f"grouped as {UNKNOWN!r} (e.g. {', '.join(coverage['unknown_examples'])})")
    if coverage.get("not_in_benchmark"):
        said.append(f"{coverage['not_in_benchmark']} row(s) of {source} name images that are not test images "
                    f"(ignored; e.g. {', '.join(coverage['not_in_benchmark_examples'])})")
    return "warning: " + "; ".join(said) if said else None


def skin_tones(db: DermXDB) -> ImageGroups:
    """The default grouping: each image's skin tone in DermXDB's metadata (:data:`GROUP_BY`)."""
    return ImageGroups(GROUP_BY, {stem: str(record.skin_tone) for stem, record in db.images.items()
                                  if record.skin_tone})


def read_groups(path: str | Path) -> ImageGroups:
    """The groups file ``path`` (module docstring): its attribute (the header of the column other than
    ``image``) and each image's value."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = csv.reader(handle)
        header = [cell.strip() for cell in next(rows, [])]
        if len(header) != 2:
            raise ValueError(f"{path}, line 1: a groups file has exactly two columns, image and the attribute "
                             f"(e.g. image,fitzpatrick); got {len(header)}: {header}")
        if "image" not in header:
            raise ValueError(f"{path}, line 1: no column 'image' (the image's stem or file name); got {header}")
        column = 1 - header.index("image")
        by = header[column]
        if not by or by == "image":
            raise ValueError(f"{path}, line 1: the second column needs the attribute's name as its header "
                             f"(e.g. image,fitzpatrick); got {header}")
        if by in RESERVED or ":" in by:
            raise ValueError(f"{path}, line 1: the attribute {by!r} is a column of the benchmark's images table; "
                             "name it otherwise (e.g. fitzpatrick)")
        values: dict[str, str] = {}
        lines: dict[str, int] = {}
        for row in rows:
            line = rows.line_num
            if not any(cell.strip() for cell in row):
                continue  # a blank line
            if len(row) != 2:
                raise ValueError(f"{path}, line {line}: expected 2 fields (image,{by}); got {len(row)}: {row}")
            stem, value = image_stem(row[1 - column]), row[column].strip()
            if not stem or not value:
                raise ValueError(f"{path}, line {line}: empty {'image' if not stem else by} (leave an image without "
                                 f"a value out of the file: it is grouped as {UNKNOWN!r})")
            if stem in values:
                raise ValueError(f"{path}, line {line}: image {stem!r} is already on line {lines[stem]}")
            values[stem], lines[stem] = value, line
    return ImageGroups(by, values, str(path))
