"""Issue 14, smaller defects of ``dermx predict``: empty folders, value-less flags given a value, run
folders and Lightning checkpoints as --model, bare target names for maps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dermx.cli import app
from dermx.predict import Predictor
from predict.samples import photo


def test_an_empty_folder_is_an_error(checkpoint: Path, tmp_path: Path) -> None:
    """Old code: exit 0, '0 image(s) predicted'."""
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(app, ["predict", "-m", str(checkpoint), str(tmp_path / "empty")])
    assert result.exit_code == 1 and "no image to predict" in result.output


def test_a_value_after_a_valueless_flag_is_refused_before_any_work(checkpoint: Path, tmp_path: Path) -> None:
    """Old code: `--json false` printed the JSON, then skipped 'false' as a missing file."""
    photo().save(tmp_path / "a.png")
    result = CliRunner().invoke(app, ["predict", "-m", str(checkpoint), str(tmp_path / "a.png"), "--json", "false"])
    assert result.exit_code == 2
    assert "no such file or folder: false" in result.stderr and "take no value" in result.stderr
    assert result.stdout == ""


@pytest.mark.slow
def test_a_run_folder_and_its_best_checkpoint_are_models(checkpoint: Path, tmp_path: Path) -> None:
    """Old code: both refused with 'expected a folder with config.json and model.safetensors'."""
    run = tmp_path / "run"
    shutil.copytree(checkpoint, run / "model")
    (run / "config.json").write_text('{"kind": "dermx"}')  # the run's TrainConfig, not a checkpoint
    (run / "lightning").mkdir()
    for name in ("best.ckpt", "last.ckpt"):
        (run / "lightning" / name).write_bytes(b"lightning state")
    photo().save(tmp_path / "a.png")
    digests = []
    for model in (run, run / "lightning" / "best.ckpt"):
        result = CliRunner().invoke(app, ["predict", "-m", str(model), str(tmp_path / "a.png"), "--json"])
        assert result.exit_code == 0, result.output
        digests.append(json.loads(result.stdout)["model"]["checkpoint"]["sha256"])
    assert digests[0] == digests[1]
    last = CliRunner().invoke(app, ["predict", "-m", str(run / "lightning" / "last.ckpt"), str(tmp_path / "a.png")])
    assert last.exit_code == 1 and "not the exported model" in last.output


def test_original_map_accepts_an_unambiguous_bare_name(predictor: Predictor) -> None:
    (result,) = predictor.predict([photo()])
    assert np.array_equal(result.original_map(result.diagnosis), result.original_map(f"diagnosis:{result.diagnosis}"))
    with pytest.raises(KeyError, match="no map 'Nothing'"):
        result.original_map("Nothing")
