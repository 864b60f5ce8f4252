"""Names of a run folder's files and the schema version every JSON document carries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Version of the run-folder layout. 2: every document carries ``schema`` and ``kind``; method names
#: are the engine's keys everywhere (``gradcam++``); patient-level statistics (docs/design.md §11).
SCHEMA = 2

SUMMARY = "summary.json"
TABLES: tuple[str, ...] = ("items", "baselines", "images", "ceiling", "raters", "interventions")
EXAMPLES = "examples.npz"
LEADERBOARD_JSON, LEADERBOARD_CSV, LEADERBOARD_EXAMPLES = (
    "leaderboard.json", "leaderboard.csv", "leaderboard_examples.npz")
MANIFEST = "manifest.json"
MISSING_IMAGES = "missing_images.txt"


class RunFolderError(ValueError):
    """A run folder that cannot be read: a file missing, or written by another version of dermx."""


def stamped(document: dict[str, Any], kind: str) -> dict[str, Any]:
    """``document`` with ``schema`` and ``kind`` first."""
    return {"schema": SCHEMA, "kind": kind, **{k: v for k, v in document.items() if k not in ("schema", "kind")}}


def check_schema(document: dict[str, Any], path: Path, kinds: tuple[str, ...]) -> dict[str, Any]:
    """``document`` if it has this version's schema and one of ``kinds``; else :class:`RunFolderError`."""
    schema = document.get("schema")
    if schema != SCHEMA:
        written = f"schema {schema}" if schema is not None else "an older dermx (no schema)"
        raise RunFolderError(f"{path}: written by {written}, this dermx reads schema {SCHEMA}; run the command "
                             "that made the folder again")
    if document.get("kind") not in kinds:
        raise RunFolderError(f"{path}: a {document.get('kind')!r} document, expected {' or '.join(kinds)}")
    return document
