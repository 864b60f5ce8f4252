"""Image collections in the user's own vocabulary: class folders, or a table with concept columns.

Two layouts (names mapped by :mod:`dermx.vocab_map`, optionally through an aliases file):

- class folders (:func:`read_folder`): ``ROOT/<class name>/**/<image>``; any class names;
- a table (:func:`read_table`), comma- or semicolon-separated: an image column (``image``, ``path``,
  ``ImageID``, ``image_id``, ``Image_name``), a diagnosis column (``diagnosis`` or ``label``), an
  optional ``patient_id``, and every other column a characteristic with 0/1 values: the layout of
  concept-annotated sets such as SkinCon (Fitzpatrick17k images, 48 concepts; its
  ``Do not consider this image`` column marks rows to leave out) or DermaCon-IN. Image paths are
  relative to the image folder (default: the table's folder); a name without suffix is looked up
  with any image suffix.

Rows left out (flagged unusable, image file missing) are counted by reason in
:attr:`Collection.skipped`, never dropped silently. A value that is not 0/1, an unknown or empty
class, or two columns naming one characteristic raise :class:`~dermx.data.DermXDBError` naming the
file, line and column.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dermx.data import DermXDBError
from dermx.data.images import IMAGE_SUFFIXES
from dermx.train.config import TrainConfig
from dermx.train.datasets import Item
from dermx.vocab_map import (
    Aliases,
    characteristic_name,
    characteristic_vocabulary,
    class_vocabulary,
    diagnosis_name,
    read_aliases,
)

IMAGE_COLUMNS: tuple[str, ...] = ("image", "path", "ImageID", "image_id", "Image_name")
DIAGNOSIS_COLUMNS: tuple[str, ...] = ("diagnosis", "label")
PATIENT_COLUMNS: tuple[str, ...] = ("patient_id",)
#: 0/1 columns that mark a row as unusable (SkinCon) rather than name a characteristic.
EXCLUDE_COLUMNS: tuple[str, ...] = ("Do not consider this image",)


@dataclass(frozen=True)
class Collection:
    """Items (diagnosis indices into ``classes``; characteristic labels in ``characteristics`` order),
    the user's column name of each characteristic, and the rows left out by reason."""

    items: list[Item]
    classes: tuple[str, ...]
    characteristics: tuple[str, ...] = ()
    columns: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: images, classes, characteristics (with those mapped onto DermXDB's) and skips."""
        from dermx import vocab

        text = f"{len(self.items)} images, {len(self.classes)} classes ({', '.join(self.classes)})"
        if self.characteristics:
            shared = [c for c in self.characteristics if c in vocab.CHARACTERISTICS]
            text += (f", {len(self.characteristics)} characteristics ({len(shared)} shared with DermXDB: "
                     f"{', '.join(shared) or 'none'})")
        if self.skipped:
            text += "; left out: " + ", ".join(f"{n} {reason}" for reason, n in self.skipped.items())
        return text


def _find_image(base: Path, name: str) -> Path | None:
    path = base / name
    if path.is_file():
        return path
    if not path.suffix:
        for suffix in IMAGE_SUFFIXES:
            for candidate in (path.with_suffix(suffix), path.with_suffix(suffix.upper())):
                if candidate.is_file():
                    return candidate
    return None


def _index(labelled: Sequence[tuple[str, Path, str, str, tuple[float, ...]]]) -> tuple[list[Item], tuple[str, ...]]:
    classes = class_vocabulary(name for _, _, name, _, _ in labelled)
    items = [Item(key, path, classes.index(name), group, chars) for key, path, name, group, chars in labelled]
    return items, classes


def read_folder(root: str | Path, aliases: Aliases | None = None) -> Collection:
    """Class sub-folders with any class names (module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise DermXDBError(f"{root}: image folder does not exist")
    labelled = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        name = diagnosis_name(folder.name, aliases)
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                key = str(path.relative_to(root))
                labelled.append((key, path, name, key, ()))
    if not labelled:
        raise DermXDBError(f"{root}: no images in class sub-folders")
    items, classes = _index(labelled)
    return Collection(items, classes)


def _column(fields: Sequence[str], names: tuple[str, ...], table: Path, what: str, required: bool = True) -> str | None:
    found = [f for f in fields if f in names or f.lower() in (n.lower() for n in names)]
    if not found and required:
        raise DermXDBError(f"{table}: no {what} column (expected one of {', '.join(names)}; columns: "
                           f"{', '.join(fields)})")
    return found[0] if found else None


def _flag(value: str | None, table: Path, line: int, column: str) -> float:
    text = (value or "").strip()
    if text in ("0", "1", "0.0", "1.0"):
        return float(text[0])
    raise DermXDBError(f"{table}, line {line}, column {column!r}: expected 0 or 1, got {text!r}")


def read_table(table: str | Path, image_root: str | Path | None = None, aliases: Aliases | None = None) -> Collection:
    """A table of images, diagnoses, optional patients and 0/1 characteristic columns (module docstring)."""
    table = Path(table)
    if not table.is_file():
        raise DermXDBError(f"{table}: label file does not exist")
    base = Path(image_root) if image_root else table.parent
    text = table.read_text(encoding="utf-8-sig")
    dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;\t") if text.strip() else csv.excel
    rows = list(csv.DictReader(text.splitlines(), dialect=dialect))
    fields = list(rows[0].keys()) if rows else []
    image = _column(fields, IMAGE_COLUMNS, table, "image")
    diagnosis = _column(fields, DIAGNOSIS_COLUMNS, table, "diagnosis")
    patient = _column(fields, PATIENT_COLUMNS, table, "patient", required=False)
    exclude = _column(fields, EXCLUDE_COLUMNS, table, "exclusion", required=False)
    own = [f for f in fields if f not in (image, diagnosis, patient, exclude) and f]
    mapped = {column: characteristic_name(column, aliases) for column in own}
    twice = sorted({m for m in mapped.values() if list(mapped.values()).count(m) > 1})
    if twice:
        raise DermXDBError(f"{table}: several columns name the characteristic(s) {twice}: "
                           f"{[c for c, m in mapped.items() if m in twice]}")
    order = characteristic_vocabulary(mapped.values())
    column_of = {m: c for c, m in mapped.items()}
    labelled: list[tuple[str, Path, str, str, tuple[float, ...]]] = []
    skipped: Counter[str] = Counter()
    for line, row in enumerate(rows, start=2):
        if exclude is not None and _flag(row[exclude], table, line, exclude):
            skipped[f"flagged '{exclude}'"] += 1
            continue
        key, dx = (row[image] or "").strip(), (row[diagnosis] or "").strip()
        if not key or not dx:
            raise DermXDBError(f"{table}, line {line}: empty {image if not key else diagnosis}")
        chars = tuple(_flag(row[column_of[c]], table, line, column_of[c]) for c in order)
        path = _find_image(base, key)
        if path is None:
            skipped["image file not found"] += 1
            continue
        group = f"patient-{(row.get(patient) or '').strip() or key}" if patient else f"patient-{key}"
        labelled.append((key, path, diagnosis_name(dx, aliases), group, chars))
    if not labelled:
        raise DermXDBError(f"{table}: no usable row (left out: {dict(skipped) or 'none'}; images looked up in {base})")
    items, classes = _index(labelled)
    return Collection(items, classes, order, {m: c for c, m in mapped.items()}, dict(skipped))


def collection_of(config: TrainConfig) -> Collection | None:
    """The image collection a training config names (``labels`` table, else an ``images`` folder of
    class sub-folders), or ``None`` when it trains on a DermXDB folder (``data``)."""
    if config.dataset.data is not None:
        return None
    aliases = read_aliases(config.dataset.aliases) if config.dataset.aliases else None
    if config.dataset.labels is not None:
        return read_table(config.dataset.labels, config.dataset.images, aliases)
    if config.dataset.images is not None:
        return read_folder(config.dataset.images, aliases)
    raise DermXDBError("no data given: pass --data (DermXDB) or --images / --labels (a collection)")
