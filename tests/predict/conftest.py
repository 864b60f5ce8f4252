"""Fixtures for the predict tests: one tiny checkpoint and predictor per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dermx.predict import Predictor
from predict.samples import tiny_checkpoint

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("checkpoint"))


@pytest.fixture(scope="session")
def predictor(checkpoint: Path) -> Predictor:
    return Predictor(checkpoint, batch_size=4)
