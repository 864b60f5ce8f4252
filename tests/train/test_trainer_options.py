"""The Trainer options training promises: early stopping, TensorBoard next to the CSV log, Lightning's
--devices / --num-nodes / --strategy / --precision (two DDP processes on the CPU, bf16 autocast), and
resuming an interrupted run from its last epoch with its log kept."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pandas as pd
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy
from typer.testing import CliRunner

from dermx.cli import app
from dermx.models import load_checkpoint
from dermx.train import TrainConfig, TrainResult, fit, fitting
from dermx.train import module as train_module
from dermx.train.datamodule import DermXDataModule
from dermx.train.fitting import build_trainer, frame_scores, model_from_config, predict_frame
from train.conftest import tiny_config

pytestmark = pytest.mark.slow  # end-to-end runs: `make test`, not `make test-fast`


def validation_rows(run_dir: Path) -> pd.DataFrame:
    """The rows of ``logs/metrics.csv`` written at the end of a validation epoch, one per epoch."""
    frame = pd.read_csv(run_dir / "logs" / "metrics.csv")
    return frame[frame["val/loss"].notna()].reset_index(drop=True)


def last_checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "lightning" / "last.ckpt", map_location="cpu", weights_only=False)


def event_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] of the TensorBoard event files in ``folder``. Each TFRecord is: length (8
    bytes), its CRC (4), an ``Event`` protobuf, its CRC (4)."""
    from tensorboardX.proto.event_pb2 import Event

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


@pytest.fixture(scope="module")
def ramp_runs(tiny_db: tuple[Path, Path],
              tmp_path_factory: pytest.TempPathFactory) -> dict[int | None, tuple[TrainConfig, TrainResult]]:
    """DermX+ runs of at most 3 epochs that monitor λ in "min" mode. λ's warm-up (10 epochs of one step)
    raises it every step, λ = global step + 1, so the monitor never improves after epoch 0. Keyed by
    early-stopping patience (None: no early stopping)."""
    root = tmp_path_factory.mktemp("ramp")
    runs = {}
    for patience in (1, None):
        config = tiny_config(tiny_db, root / f"patience_{patience}", kind="dermx+", epochs=3, ga_warmup_epochs=10,
                             monitor="train/ga_weight", early_stopping=patience)
        runs[patience] = config, fit(config)
    return runs


def test_early_stopping_stops_when_the_monitor_cannot_improve(ramp_runs: dict) -> None:
    (_, stopped), (_, full) = ramp_runs[1], ramp_runs[None]
    # patience 1: epoch 1 does not improve on epoch 0, training stops there
    assert validation_rows(stopped.run_dir)["epoch"].tolist() == [0, 1]
    assert validation_rows(full.run_dir)["epoch"].tolist() == [0, 1, 2]
    assert any(name.startswith("EarlyStopping") for name in last_checkpoint(stopped.run_dir)["callbacks"])
    assert load_checkpoint(stopped.checkpoint_dir).config.kind == "dermx+"


def test_last_checkpoint_is_the_last_epoch_even_when_the_monitor_did_not_improve(ramp_runs: dict) -> None:
    (_, stopped), (_, full) = ramp_runs[1], ramp_runs[None]
    assert (last_checkpoint(full.run_dir)["epoch"], last_checkpoint(full.run_dir)["global_step"]) == (2, 3)
    assert (last_checkpoint(stopped.run_dir)["epoch"], last_checkpoint(stopped.run_dir)["global_step"]) == (1, 2)
    best = torch.load(full.run_dir / "lightning" / "best.ckpt", map_location="cpu", weights_only=False)
    assert best["epoch"] == 0  # the smallest λ


def test_resume_continues_the_step_count_and_keeps_the_csv_log(ramp_runs: dict, tmp_path: Path) -> None:
    config, full = ramp_runs[None]
    run_dir = tmp_path / "run"
    shutil.copytree(full.run_dir, run_dir)
    before = pd.read_csv(run_dir / "logs" / "metrics.csv")
    fit(config.replace(out=str(run_dir), epochs=4, resume=True))
    after = pd.read_csv(run_dir / "logs" / "metrics.csv")
    rows = validation_rows(run_dir)
    assert rows["epoch"].tolist() == [0, 1, 2, 3]
    pd.testing.assert_frame_equal(after.iloc[:len(before)][before.columns], before)
    assert after["step"].iloc[len(before):].min() == 3 and after["step"].is_monotonic_increasing
    # λ = global step + 1: the fourth epoch's single step is global step 3, not a restart at 0
    assert after.loc[after["epoch"] == 3, "train/ga_weight"].dropna().tolist() == [4.0]
    assert last_checkpoint(run_dir)["global_step"] == 4


def test_tensorboard_events_hold_the_logged_scalars(ramp_runs: dict) -> None:
    assert fitting.importlib.util.find_spec("tensorboardX") is not None, "tensorboardX is in the dev extra"
    _, full = ramp_runs[None]
    folder = full.run_dir / "tensorboard"
    files = list(folder.glob("events.out.tfevents.*"))
    assert files and all(f.stat().st_size > 0 for f in files)
    scalars = event_scalars(folder)
    for tag in ("train/loss_epoch", "train/loss_ga_epoch", "train/ga_weight", "val/loss", "val/dx_f1",
                "val/char_f1"):
        assert tag in scalars, sorted(scalars)
    rows = validation_rows(full.run_dir)
    assert [v for _, v in scalars["val/loss"]] == pytest.approx(rows["val/loss"].tolist())
    assert [v for _, v in scalars["val/dx_f1"]] == pytest.approx(rows["val/dx_f1"].tolist())
    assert [v for _, v in scalars["train/ga_weight"]] == [1.0, 2.0, 3.0]


def test_without_tensorboard_only_the_csv_log_is_written(tiny_db: tuple[Path, Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_config(tiny_db, tmp_path / "run")
    loggers = build_trainer(config, tmp_path / "run")[0].loggers
    assert len(loggers) == 2 and isinstance(loggers[0], CSVLogger) and isinstance(loggers[1], TensorBoardLogger)
    find_spec = fitting.importlib.util.find_spec
    monkeypatch.setattr(fitting.importlib.util, "find_spec",
                        lambda name, *a: None if name in ("tensorboard", "tensorboardX") else find_spec(name, *a))
    loggers = build_trainer(config, tmp_path / "run")[0].loggers
    assert len(loggers) == 1 and isinstance(loggers[0], CSVLogger)


def test_lightning_flags_reach_the_trainer(tiny_db: tuple[Path, Path], tmp_path: Path) -> None:
    config = tiny_config(tiny_db, tmp_path / "run", accelerator="cpu", devices="2", num_nodes=3, strategy="ddp",
                         precision="bf16-mixed")
    trainer, _ = build_trainer(config, tmp_path / "run")
    assert isinstance(trainer.strategy, DDPStrategy)
    assert (trainer.num_devices, trainer.num_nodes, trainer.world_size) == (2, 3, 6)
    assert trainer.precision == "bf16-mixed"
    assert fitting._devices("0,1") == [0, 1] and fitting._devices("-1") == -1 and fitting._devices("auto") == "auto"


def test_two_ddp_processes_on_cpu_gather_the_validation_metrics(tiny_db: tuple[Path, Path], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # ddp_fork: "ddp" re-launches the command line (under pytest, pytest itself), and the forked workers
    # inherit this spy on the validation metric (ddp_spawn also runs, ~10 s slower: workers re-import torch)
    seen = tmp_path / "seen.txt"
    macro_f1 = train_module.macro_f1

    def spy(dx: torch.Tensor, truth: torch.Tensor, *rest: torch.Tensor) -> dict[str, float]:
        with seen.open("a") as file:
            file.write(f"{torch.distributed.get_rank()} {sorted(truth.tolist())}\n")
        return macro_f1(dx, truth, *rest)

    monkeypatch.setattr(train_module, "macro_f1", spy)
    config = tiny_config(tiny_db, tmp_path / "run", kind="dermx", accelerator="cpu", devices="2",
                         strategy="ddp_fork")
    result = fit(config)
    # each rank validates 2 of the 4 images and scores all 4 (sanity check, then epoch 0)
    assert sorted(seen.read_text().splitlines()) == ["0 [0, 0, 1, 1]"] * 2 + ["1 [0, 0, 1, 1]"] * 2
    # one shareable checkpoint and the test predictions, written once from the rank-0 weights
    model = load_checkpoint(result.checkpoint_dir)
    assert model.config.training_data["n_test"] == 12 and len(pd.read_csv(result.predictions)) == 12
    assert sorted(p.name for p in (result.run_dir / "lightning").iterdir()) == ["best.ckpt", "last.ckpt"]
    # the logged F1 is that of the last epoch's model on the whole validation part, scored in one process
    data = DermXDataModule(config, model.config)
    data.setup()
    last = model_from_config(config)
    state = last_checkpoint(result.run_dir)["state_dict"]
    last.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
    whole = frame_scores(predict_frame(last, data.dataset("val", augment=False)), last.config.diagnoses,
                         last.config.characteristics)
    assert result.metrics["val/dx_f1"] == pytest.approx(whole["dx_f1"], abs=1e-6)
    assert result.metrics["val/char_f1"] == pytest.approx(whole["char_f1"], abs=1e-6)


def _bf16_autocast_works() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = torch.nn.functional.conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3))
        return out.dtype == torch.bfloat16
    except (RuntimeError, TypeError):
        return False


@pytest.mark.skipif(not _bf16_autocast_works(), reason="no bf16 autocast on this CPU / PyTorch build")
@pytest.mark.parametrize("kind", ["dx-only", "dermx+"])
def test_bf16_mixed_precision_on_cpu_exports_a_float32_model(tiny_db: tuple[Path, Path], tmp_path: Path,
                                                             kind: str) -> None:
    result = fit(tiny_config(tiny_db, tmp_path / "run", kind=kind, accelerator="cpu", precision="bf16-mixed"))
    model = load_checkpoint(result.checkpoint_dir)
    assert {p.dtype for p in model.state_dict().values() if p.is_floating_point()} == {torch.float32}
    with torch.no_grad():
        outputs = model(torch.rand(2, 3, 32, 32))
    assert outputs["diagnosis"].dtype == torch.float32
    assert torch.allclose(outputs["diagnosis"].softmax(1).sum(1), torch.ones(2))
    assert len(pd.read_csv(result.predictions)) == 12 and "val/dx_f1" in result.metrics


#: TrainConfig fields that no option of ``dermx train`` sets, with why (a ``--config`` file sets them).
CONFIG_ONLY: dict[str, str] = {"class_weights": "a mapping class -> weight",
                               "n_folds": "an option of cv (K of an image collection)"}


def test_every_training_option_is_reachable_from_the_command_line() -> None:
    """Old code: 13 TrainConfig fields (the raters, val_fraction, the schedule's T0/T_mult/eta_min, the
    guided-attention α, smoothing and warm-up, monitor, ...) could only be set in a config file."""
    import inspect

    from dermx.train.cli import _shared, _train_own

    fields = {name for section in TrainConfig.of().to_dict().values() for name in section}
    options = set(inspect.signature(_shared).parameters) | set(inspect.signature(_train_own).parameters)
    assert fields - options == set(CONFIG_ONLY)


def test_new_options_reach_the_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[TrainConfig] = []
    monkeypatch.setattr("dermx.train.fitting.fit", lambda config: seen.append(config) or (_ for _ in ()).throw(
        ValueError("stop")))
    result = CliRunner().invoke(app, ["train", "--out", str(tmp_path), "--raters", "5, labeller6", "--t0", "2",
                                      "--t-mult", "1", "--eta-min", "0", "--ga-alpha", "0.25", "--val-fraction",
                                      "0.3", "--monitor", "val/dx_f1", "--log-every-n-steps", "3"])
    assert "stop" in result.output and len(seen) == 1
    config = seen[0]
    assert config.dataset.raters == ["5", "labeller6"] and config.dataset.val_fraction == 0.3
    assert (config.optim.t0, config.optim.t_mult, config.optim.eta_min, config.optim.ga_alpha) == (2, 1, 0.0, 0.25)
    assert config.optim.monitor == "val/dx_f1" and config.run.log_every_n_steps == 3
