"""Fixtures for the service tests: one tiny checkpoint and app per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dermx.serve import create_app
from predict.samples import tiny_checkpoint

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("checkpoint"))


@pytest.fixture(scope="session")
def client(checkpoint: Path) -> Iterator[TestClient]:
    with TestClient(create_app(checkpoint, max_upload_mb=1, max_wait_ms=20)) as test_client:
        yield test_client
