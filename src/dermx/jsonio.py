"""Strict JSON out: every document dermx writes parses in any JSON reader (browsers, ``jq``).

Python's ``json`` writes float NaN and ±infinity as the bare tokens ``NaN`` / ``Infinity``, which
JSON does not have. :func:`strict_json` writes them as ``null`` (an undefined value), NumPy scalars
and arrays as numbers and lists, and anything else it cannot encode with ``str``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from dermx.atomic import write_text


def _plain(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str | int | float | bool) and k is not None else k: _plain(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    return str(value)


def strict_json(document: Any, *, indent: int | None = 2) -> str:
    """``document`` as strict JSON text (module docstring), ending with a newline."""
    return json.dumps(_plain(document), indent=indent, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(path: str | Path, document: Any, *, indent: int | None = 2) -> Path:
    """Write :func:`strict_json` of ``document`` to ``path`` (UTF-8) atomically (:mod:`dermx.atomic`: a
    killed run never leaves a torn file); returns the path."""
    return write_text(path, strict_json(document, indent=indent))
