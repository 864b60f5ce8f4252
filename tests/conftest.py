"""Shared fixtures: the real DermXDB (skipped when absent) and a writer of small DermXDB folders."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from support import DermXDBWriter

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


def _dermxdb_dir() -> Path:
    return Path(os.environ.get("DERMXDB_DIR") or REPO.parent / "shared" / "dermxdb")


@pytest.fixture(scope="session")
def dermxdb_dir() -> Path:
    """The real DermXDB release; tests using it skip when it is absent."""
    path = _dermxdb_dir()
    if not (path / "annotations").is_dir():
        pytest.skip(f"DermXDB not found at {path} (set DERMXDB_DIR)")
    return path


@pytest.fixture(scope="session")
def dermxdb(dermxdb_dir: Path):
    from dermx.data import load_dermxdb

    return load_dermxdb(dermxdb_dir)


@pytest.fixture
def make_dermxdb(tmp_path: Path) -> Callable[[], DermXDBWriter]:
    return lambda: DermXDBWriter(tmp_path / "dermxdb")
