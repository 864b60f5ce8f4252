"""Nothing lost on ``--resume``: kills are simulated by the files a kill leaves (a copy of the run folder
taken right after a checkpoint is written, a truncated or removed file), then the run is resumed and
compared with an uninterrupted one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from lightning.pytorch.callbacks import ModelCheckpoint
from typer.testing import CliRunner

from dermx.cli import app
from dermx.train import TrainConfig, fit, run_cv
from dermx.train.fitting import build_trainer
from support import plain
from train.conftest import tiny_config

pytestmark = pytest.mark.slow  # end-to-end runs: `make test`, not `make test-fast`


def train_rows(run_dir: Path) -> pd.DataFrame:
    """The rows of ``logs/metrics.csv`` holding an epoch's training aggregates, by epoch."""
    frame = pd.read_csv(run_dir / "logs" / "metrics.csv")
    return frame[frame["train/loss_epoch"].notna()].set_index("epoch")


@pytest.fixture(scope="module")
def killed_after_first_checkpoint(tiny_db: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
                                  ) -> tuple[TrainConfig, Path, Path]:
    """A two-epoch run, and a copy of its folder taken right after its first ``last.ckpt`` was written:
    what a kill at that moment leaves."""
    root = tmp_path_factory.mktemp("killed")
    config = tiny_config(tiny_db, root / "full", epochs=2)
    killed = root / "killed"
    save = ModelCheckpoint._save_checkpoint

    def save_then_copy(self: ModelCheckpoint, trainer: object, filepath: str) -> None:
        save(self, trainer, filepath)
        if Path(filepath).name == "last.ckpt" and not killed.exists():
            shutil.copytree(Path(filepath).parents[1], killed)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ModelCheckpoint, "_save_checkpoint", save_then_copy)
        fit(config)
    assert killed.is_dir()
    return config, Path(config.run.out), killed


def test_a_kill_right_after_the_first_checkpoint_loses_no_log_row(killed_after_first_checkpoint) -> None:
    config, full, killed = killed_after_first_checkpoint
    # at that moment Lightning has not yet logged epoch 0's training row: only the checkpoint holds it
    assert "train/loss_epoch" not in pd.read_csv(killed / "logs" / "metrics.csv").columns
    fit(config.replace(out=str(killed), resume=True))
    resumed, uninterrupted = train_rows(killed), train_rows(full)
    assert resumed.index.tolist() == [0, 1]
    # epoch 0's row is the one the uninterrupted run logged (it was trained before the kill)
    pd.testing.assert_series_equal(resumed.loc[0, ["step", "train/loss_epoch"]],
                                   uninterrupted.loc[0, ["step", "train/loss_epoch"]])


def test_a_torn_last_checkpoint_is_one_error_naming_best(killed_after_first_checkpoint, tmp_path: Path,
                                                          tiny_db: tuple[Path, Path]) -> None:
    config, full, _ = killed_after_first_checkpoint
    run = tmp_path / "run"
    shutil.copytree(full, run)
    last = run / "lightning" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # a write cut short
    with pytest.raises(ValueError, match=r"last\.ckpt: cannot resume from this checkpoint, it is unreadable .*"
                                         r"best\.ckpt beside it is readable \(epoch \d\): copy it over last\.ckpt"):
        fit(config.replace(out=str(run), resume=True))
    args = ["train", "--data", str(tiny_db[0]), "--images", str(tiny_db[1]), "--kind", "dx-only", "--preset", "cpu",
            "--input-size", "32", "--fold", "0", "--epochs", "2", "--no-pretrained", "--no-progress", "--resume",
            "--out", str(run), "--cache-dir", str(tmp_path / "cache")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert plain(result.output).count("error:") == 1 and "best.ckpt beside it is readable" in plain(result.output)
    (run / "lightning" / "best.ckpt").unlink()
    with pytest.raises(ValueError, match=r"best\.ckpt is missing or unreadable too: run without --resume"):
        fit(config.replace(out=str(run), resume=True))


def test_checkpoints_are_written_atomically(tiny_db: tuple[Path, Path], tmp_path: Path) -> None:
    from dermx.atomic import atomic_write

    trainer, _ = build_trainer(tiny_config(tiny_db, tmp_path / "run"), tmp_path / "run")
    assert type(trainer.strategy.checkpoint_io).__name__ == "AtomicCheckpointIO"
    path = tmp_path / "file.bin"
    path.write_bytes(b"previous")
    with pytest.raises(KeyboardInterrupt), atomic_write(path) as handle:
        handle.write(b"half of the new")
        raise KeyboardInterrupt  # killed in the middle of the write
    assert path.read_bytes() == b"previous" and not list(tmp_path.glob(".*.part"))


# ----- dermx cv --resume --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cv_run(tiny_db: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainConfig, Path]:
    out = tmp_path_factory.mktemp("cv") / "run"
    config = tiny_config(tiny_db, out, epochs=1, fold=None)
    run_cv(config, [0, 1], maps_method="none")
    return config, out


def resume_copy(cv_run: tuple[TrainConfig, Path], tmp_path: Path, change) -> tuple[TrainConfig, Path]:
    """A copy of the cross-validation run, damaged by ``change(out)`` as a kill would leave it."""
    config, source = cv_run
    out = tmp_path / "run"
    shutil.copytree(source, out)
    change(out)
    return config.replace(out=str(out), resume=True), out


def test_resume_rebuilds_the_summary_of_every_fold(cv_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed while writing summary.csv after both folds completed: nothing is trained again, and the
    summary and pooled predictions are those of the uninterrupted run."""
    def torn_summary(out: Path) -> None:
        (out / "summary.csv").write_text("fold\n0\n")
        (out / "predictions.csv").unlink()

    config, _ = resume_copy(cv_run, tmp_path, torn_summary)
    monkeypatch.setattr("dermx.train.cv.fit", lambda _: pytest.fail("a completed fold was trained again"))
    result = run_cv(config, [0, 1], maps_method="none")
    summary, original = pd.read_csv(result.summary), pd.read_csv(cv_run[1] / "summary.csv")
    assert summary["fold"].tolist() == [0, 1] and {"test/dx_f1", "val/loss"} <= set(summary.columns)
    assert summary.notna().all().all(), summary
    pd.testing.assert_frame_equal(summary, original)
    assert len(pd.read_csv(result.predictions)) == 24


def test_resume_trains_again_a_fold_killed_before_it_completed(cv_run, tmp_path: Path) -> None:
    """Killed during fold 1's export: its predictions and record are missing. The summary holds both
    folds (fold 0 kept with its metrics, not a blank row)."""
    def fold_1_interrupted(out: Path) -> None:
        for name in ("completed.json", "predictions.csv"):
            (out / "fold_1" / name).unlink()
        (out / "summary.csv").unlink()

    config, out = resume_copy(cv_run, tmp_path, fold_1_interrupted)
    result = run_cv(config, [0, 1], maps_method="none")
    summary = pd.read_csv(result.summary)
    assert summary["fold"].tolist() == [0, 1] and summary.notna().all().all(), summary
    pd.testing.assert_series_equal(summary.iloc[0], pd.read_csv(cv_run[1] / "summary.csv").iloc[0])
    assert (out / "fold_1" / "completed.json").is_file() and len(pd.read_csv(result.predictions)) == 24


def test_resume_does_not_keep_a_fold_whose_predictions_were_cut(cv_run, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    def cut_predictions(out: Path) -> None:
        path = out / "fold_0" / "predictions.csv"
        path.write_text("".join(path.read_text().splitlines(keepends=True)[:7]))  # 6 of 12 rows

    config, out = resume_copy(cv_run, tmp_path, cut_predictions)
    result = run_cv(config, [0, 1], maps_method="none")
    assert "fold 0: predictions.csv holds 6 rows, its completion record 12" in caplog.text
    assert len(pd.read_csv(out / "fold_0" / "predictions.csv")) == 12
    assert len(pd.read_csv(result.predictions)) == 24
