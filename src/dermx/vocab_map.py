"""Users' own class and characteristic names, mapped onto DermXDB's where they mean the same thing.

A user's data may name diagnoses (``eczema``, ``melanoma``, ``psoriasis``) and characteristics
(SkinCon's ``Papule``, ``Plaque``, ``Ulcer``, ...) freely. Each name is mapped, in this order:

1. through an aliases file (:func:`read_aliases`): CSV with columns ``alias,name``, e.g.
   ``plaque psoriasis,Psoriasis`` or ``Comedo,Open comedo``; matched ignoring case and separators;
2. onto DermXDB's spelling when :mod:`dermx.vocab` knows it as a name of the same kind (case,
   separators, accents, plurals and the papers' spellings: ``psoriasis`` → ``Psoriasis``,
   ``papules`` → ``Papule``);
3. else kept as given (stripped): the user's own class or characteristic.

:func:`class_vocabulary` then orders a data set's classes: DermXDB's six when every class is one of
them (the default vocabulary), else the data's own classes, DermXDB ones first in DermXDB order.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path

from dermx import vocab

Aliases = Mapping[str, str]


def _key(name: str) -> str:
    return " ".join(name.replace("_", " ").replace("-", " ").lower().split())


def read_aliases(path: str | Path) -> dict[str, str]:
    """``alias → name`` from a CSV with columns ``alias`` and ``name`` (keys normalised for lookup)."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"alias", "name"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: an aliases file needs the columns alias,name (got {reader.fieldnames})")
        out: dict[str, str] = {}
        for line, row in enumerate(reader, start=2):
            alias, name = (row.get("alias") or "").strip(), (row.get("name") or "").strip()
            if not alias or not name:
                raise ValueError(f"{path}, line {line}: empty alias or name")
            if _key(alias) in out and out[_key(alias)] != name:
                raise ValueError(f"{path}, line {line}: alias {alias!r} mapped twice")
            out[_key(alias)] = name
    return out


def _map(name: str, kind: vocab.Kind, aliases: Aliases | None) -> str:
    stripped = name.strip()
    if not stripped:
        raise ValueError("empty name")
    mapped = (aliases or {}).get(_key(stripped), stripped)
    if vocab.kind_of(mapped) == kind:
        return vocab.canonical(mapped, warn=False)
    return mapped


def diagnosis_name(name: str, aliases: Aliases | None = None) -> str:
    """A user's diagnosis name on DermXDB's spelling where it is one of its diagnoses (module docstring)."""
    return _map(name, vocab.Kind.DIAGNOSIS, aliases)


def characteristic_name(name: str, aliases: Aliases | None = None) -> str:
    """A user's characteristic name on DermXDB's spelling where it is one of its characteristics."""
    return _map(name, vocab.Kind.CHARACTERISTIC, aliases)


def class_vocabulary(names: Iterable[str]) -> tuple[str, ...]:
    """The classes of a data set whose (mapped) class names are ``names`` (module docstring)."""
    present = set(names)
    if present <= set(vocab.DIAGNOSES):
        return vocab.DIAGNOSES
    return (*(d for d in vocab.DIAGNOSES if d in present), *sorted(present - set(vocab.DIAGNOSES)))


def characteristic_vocabulary(names: Iterable[str]) -> tuple[str, ...]:
    """Characteristic names in a stable order: DermXDB's (in its order) first, then the others as given."""
    given = list(dict.fromkeys(names))
    return (*(c for c in vocab.CHARACTERISTICS if c in given), *(c for c in given if c not in vocab.CHARACTERISTICS))
