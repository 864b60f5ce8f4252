from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from dermx import vocab
from dermx.models import load_checkpoint
from dermx.train import TrainConfig, TrainResult, fit, load_config
from support import plain

pytestmark = pytest.mark.slow  # end-to-end runs: `make test`, not `make test-fast`


@pytest.fixture(scope="module")
def trained(tiny_db: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainConfig,
                                                                                          TrainResult]:
    out = tmp_path_factory.mktemp("run")
    config = TrainConfig.of(data=str(tiny_db[0]), images=str(tiny_db[1]), kind="dermx+", input_size=(32, 32),
                         epochs=1, batch_size=8, pretrained=False, fold=0, val_fraction=0.25, progress=False,
                         cache_dir=str(out / "cache"), out=str(out / "run"), in_memory=True, resolution="crop")
    return config, fit(config)


def test_fit_writes_a_shareable_checkpoint_and_test_predictions(trained: tuple[TrainConfig, TrainResult]) -> None:
    _, result = trained
    model = load_checkpoint(result.checkpoint_dir)
    assert model.config.kind == "dermx+" and model.config.input_size == (32, 32) and model.config.resolution == "crop"
    assert model.config.training_data["n_test"] == 12 and model.config.training_data["fold"] == 0
    frame = pd.read_csv(result.predictions)
    assert len(frame) == 12
    assert [c for c in frame.columns if c.startswith("dx:")] == [f"dx:{d}" for d in vocab.DIAGNOSES]
    assert len([c for c in frame.columns if c.startswith("char:")]) == 16
    assert frame[[f"dx:{d}" for d in vocab.DIAGNOSES]].sum(axis=1).round(4).eq(1).all()
    for key in ("val/loss", "val/loss_ga", "val/dx_f1", "test/dx_f1", "test/char_f1"):
        assert key in result.metrics
    assert (result.run_dir / "logs" / "metrics.csv").is_file()


def test_resume_continues_from_the_last_checkpoint(trained: tuple[TrainConfig, TrainResult],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    config, result = trained
    with caplog.at_level(logging.INFO):
        fit(config.replace(epochs=2, resume=True))
    assert "Restored all states from the checkpoint" in caplog.text
    last = torch.load(result.run_dir / "lightning" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 2


def test_config_file_then_command_line_overrides(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("kind: dermx+\nepochs: 7\nclass_weights: {Acne: 2}\n")
    config = load_config(tmp_path / "c.yaml", epochs=3, lr=None)
    assert (config.model.kind, config.optim.epochs, config.optim.lr) == ("dermx+", 3, 5e-4)
    assert config.attention_weight == 10.0
    (tmp_path / "bad.json").write_text('{"epochz": 1}')
    with pytest.raises(ValueError, match="epochz"):
        load_config(tmp_path / "bad.json")


def test_cli_cv_runs_chosen_folds(tiny_db: tuple[Path, Path], tmp_path: Path) -> None:
    from dermx.cli import app

    out = tmp_path / "cv"
    args = ["cv", "--data", str(tiny_db[0]), "--images", str(tiny_db[1]), "--kind", "dx-only", "--folds", "1",
            "--epochs", "1", "--batch-size", "8", "--input-size", "32", "--no-pretrained", "--no-progress",
            "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out / "predictions.csv")
    assert set(frame["fold"]) == {1} and len(frame) == 12
    assert not [c for c in frame.columns if c.startswith("char:")]
    assert (out / "fold_1" / "model" / "model.safetensors").is_file()
    assert (out / "summary.csv").is_file()


def test_cli_reports_a_missing_image_folder(tiny_db: tuple[Path, Path], tmp_path: Path) -> None:
    from dermx.cli import app

    result = CliRunner().invoke(app, ["train", "--data", str(tiny_db[0]), "--images", str(tmp_path / "none"),
                                      "--no-pretrained", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2  # a usage error: Click checks the folder before anything runs
    assert "does not exist" in plain(result.output)


def test_an_unknown_resolution_policy_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown resolution policy 'stretch'"):
        TrainConfig.of(resolution="stretch")  # type: ignore[arg-type]


def test_a_run_failing_before_training_leaves_no_empty_out_folder(tiny_db: tuple[Path, Path],
                                                                   tmp_path: Path) -> None:
    from dermx.cli import app

    empty = tmp_path / "no-images"
    empty.mkdir()
    base = ["train", "--data", str(tiny_db[0]), "--images", str(empty), "--no-pretrained"]
    failed = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "new")])
    assert failed.exit_code == 1 and "error:" in failed.output and "Traceback" not in failed.output
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "existing"
    kept.mkdir()
    assert CliRunner().invoke(app, [*base, "--out", str(kept)]).exit_code == 1
    assert kept.is_dir()  # a folder the user made is never removed
