"""Schemas of the DermXDB files, checked at the boundary with pydantic before anything reads them.

Three formats (see :mod:`dermx.data.reader` for the layout):

- an annotation file, a V7/Darwin export: :class:`AnnotationFileJSON` (``image.width`` and
  ``image.height`` integers in [1, :data:`MAX_SIDE`]; ``annotations`` a list of :class:`AnnotationJSON`, each with a
  non-empty ``name`` and, for outlines, ``polygon.path`` (one ring) or ``complex_polygon.path``
  (several rings) of finite ``{"x", "y"}`` points, an optional ``bounding_box`` of finite ``x``, ``y``
  and non-negative ``w``, ``h``, and optional ``attributes``, a list of names);
- a row of ``metadata.csv``: :data:`MetadataRow`;
- a row of a fold file: :data:`FoldRow`.

Numbers in the JSON are strict (``true`` or ``"12"`` is not a coordinate), and NaN or infinite
coordinates are refused. Every failure becomes a :class:`pydantic.ValidationError` whose entries give
the field's location; :func:`describe` turns them into load-report text (``bounding_box.x: Field
required``). The typed records of :mod:`dermx.data.records` are built from the validated data.

Validation runs in pydantic-core (compiled): :data:`ANNOTATION_FILE` ``.validate_json`` parses and
checks a file in one pass, about as fast as ``json.load`` alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, NotRequired

from pydantic import AfterValidator, AllowInfNan, BeforeValidator, Field, Strict, TypeAdapter
from pydantic_core import ErrorDetails
from typing_extensions import TypedDict

MAX_SIDE = 65_535
"""Largest image width or height accepted (the largest a JPEG can have)."""

Coordinate = Annotated[float, Strict(), AllowInfNan(False)]
Extent = Annotated[float, Strict(), AllowInfNan(False), Field(ge=0)]
PixelCount = Annotated[int, Strict(), Field(gt=0, le=MAX_SIDE)]
Name = Annotated[str, Strict(), Field(min_length=1)]


class PointJSON(TypedDict):
    x: Coordinate
    y: Coordinate


class PolygonJSON(TypedDict):
    path: list[PointJSON]


class ComplexPolygonJSON(TypedDict):
    path: list[list[PointJSON]]


class BoundingBoxJSON(TypedDict):
    x: Coordinate
    y: Coordinate
    w: Extent
    h: Extent


class AnnotationJSON(TypedDict):
    """One Darwin annotation: a ``tag`` (diagnosis, quality or non-localisable characteristic) or an
    outline (``polygon`` or ``complex_polygon``); other keys are ignored."""

    name: Name
    tag: NotRequired[dict[str, Any]]
    polygon: NotRequired[PolygonJSON]
    complex_polygon: NotRequired[ComplexPolygonJSON]
    bounding_box: NotRequired[BoundingBoxJSON]
    attributes: NotRequired[list[Annotated[str, Strict()]] | None]


class ImageJSON(TypedDict):
    width: PixelCount
    height: PixelCount


class AnnotationFileJSON(TypedDict):
    image: ImageJSON
    annotations: list[AnnotationJSON]


ANNOTATION_FILE: TypeAdapter[AnnotationFileJSON] = TypeAdapter(AnnotationFileJSON)


# ----- CSV rows --------------------------------------------------------------------------------
class _MissingCell:
    """The value :class:`csv.DictReader` gives the columns a short row lacks (its ``restval``)."""

    def __repr__(self) -> str:
        return "<missing cell>"


MISSING_CELL = _MissingCell()
EXTRA_CELLS = "(cells beyond the header)"
"""The key under which :class:`csv.DictReader` collects the cells of a row longer than its header (the
row schemas spell it out: a ``TypedDict()`` key must be a literal string)."""


def _refuse_extra_cells(cells: list[str]) -> list[str]:
    raise ValueError(f"the row has {len(cells)} cell(s) more than the header")


def _blank_to_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


Cell = Annotated[str, Strict()]
FilledCell = Annotated[str, Strict(), Field(min_length=1)]
ExtraCells = Annotated[list[str], AfterValidator(_refuse_extra_cells)]

MetadataRow = TypedDict("MetadataRow", {
    "current_filename": FilledCell,
    "diagnosis": FilledCell,
    "original_filename": NotRequired[Cell],
    "dataset": NotRequired[Cell],
    "skin_tone": NotRequired[Cell],
    "age": NotRequired[Cell],
    "(cells beyond the header)": NotRequired[ExtraCells],
})
"""A row of ``metadata.csv`` (';'-separated). The required keys must be columns of the file; a
missing optional column is reported once, and its value is ``None`` for every image."""

FoldRow = TypedDict("FoldRow", {
    "current_filename": FilledCell,
    "patient_id": NotRequired[Annotated[int | None, BeforeValidator(_blank_to_none)]],
    "(cells beyond the header)": NotRequired[ExtraCells],
})
"""A row of ``folds/metadata_fold_<k>_<train|test>.csv`` (','-separated); a blank ``patient_id`` is
``None``, any other must be an integer."""

ROW_SCHEMAS: dict[type, TypeAdapter[Any]] = {MetadataRow: TypeAdapter(MetadataRow), FoldRow: TypeAdapter(FoldRow)}
"""The validator of each CSV row schema."""


def columns(row_type: type) -> tuple[frozenset[str], frozenset[str]]:
    """(required, optional) column names of a row schema (the extra-cells key excluded)."""
    required: frozenset[str] = row_type.__required_keys__  # type: ignore[attr-defined]
    optional: frozenset[str] = row_type.__optional_keys__  # type: ignore[attr-defined]
    return required, optional - {EXTRA_CELLS}


# ----- messages --------------------------------------------------------------------------------
def field_path(location: Iterable[int | str]) -> str:
    """``("bounding_box", "x")`` -> ``bounding_box.x``; list indices as ``[i]``."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def describe(errors: Iterable[ErrorDetails], limit: int = 3) -> str:
    """One line for a list of validation errors: ``field: message`` for the first ``limit``."""
    errors = list(errors)
    parts = []
    for error in errors[:limit]:
        message = ("missing cell (the row is shorter than the header)" if error.get("input") is MISSING_CELL
                   else error["msg"])
        where = field_path(error["loc"])
        parts.append(f"{where}: {message}" if where else message)
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts)
