"""``summary.json``: one writer and one reader for the summary of a benchmark or of rater agreement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from dermx.jsonio import write_json
from dermx.runs.layout import SUMMARY, RunFolderError, check_schema, stamped

SummaryKind = Literal["benchmark", "interrater"]


def write_summary(out: str | Path, summary: dict[str, Any], kind: SummaryKind) -> Path:
    """Write ``summary`` (strict JSON, ``schema`` and ``kind`` first) to ``out/summary.json``."""
    return write_json(Path(out) / SUMMARY, stamped(summary, kind))


def read_summary(run_dir: str | Path, kinds: tuple[SummaryKind, ...] = ("benchmark", "interrater")) -> dict[str, Any]:
    """The ``summary.json`` of ``run_dir``, checked for schema and kind (:class:`RunFolderError` otherwise)."""
    path = Path(run_dir) / SUMMARY
    if not path.is_file():
        raise RunFolderError(f"{run_dir}: no {SUMMARY} (run `dermx evaluate` or `dermx interrater` first)")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise RunFolderError(f"{path}: not valid JSON ({error})") from error
    return check_schema(document, path, kinds)
