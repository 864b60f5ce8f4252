"""Strict JSON: undefined values are ``null``, NumPy values plain numbers; any JSON reader parses it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from dermx.jsonio import strict_json, write_json


def _reject(token: str) -> None:
    raise AssertionError(f"non-JSON token {token}")


def test_nan_and_infinities_become_null_and_numpy_values_plain(tmp_path: Path) -> None:
    document = {"mean": math.nan, "low": -math.inf, "high": np.float32(np.inf), "n": np.int64(3),
                "ok": np.bool_(True), "values": np.array([1.5, np.nan]), "nested": [{"x": float("nan")}],
                "path": Path("a") / "b", "tuple": (1, 2.5)}
    text = write_json(tmp_path / "s.json", document).read_text(encoding="utf-8")
    parsed = json.loads(text, parse_constant=_reject)
    assert parsed == {"mean": None, "low": None, "high": None, "n": 3, "ok": True, "values": [1.5, None],
                      "nested": [{"x": None}], "path": str(Path("a") / "b"), "tuple": [1, 2.5]}
    assert text.endswith("\n")


def test_plain_json_round_trips_unchanged() -> None:
    document = {"a": [1, 2.25, "x", None, True], "b": {"c": -0.5}}
    assert json.loads(strict_json(document)) == document
    with pytest.raises(AssertionError):
        json.loads("[NaN]", parse_constant=_reject)
