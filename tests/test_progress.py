"""Progress when output is not a terminal: periodic plain lines instead of a silent rich bar."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from typer.testing import CliRunner

from dermx.progress import PlainProgress, progress, track


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_terminal_gets_the_rich_bar_and_a_pipe_plain_lines() -> None:
    assert isinstance(progress(Console(file=io.StringIO(), force_terminal=True)), Progress)
    assert isinstance(progress(Console(file=io.StringIO())), PlainProgress)


def test_plain_lines_come_every_interval_and_at_the_end() -> None:
    out, clock = io.StringIO(), _Clock()
    bar = PlainProgress(Console(file=out, width=200), interval=10.0, clock=clock)
    for _ in bar.track(range(20), description="scoring"):
        clock.now += 3.0  # 20 items, 3 s each: a line at 12, 24, 36, 48 s, then the last at 60 s
    lines = out.getvalue().splitlines()
    assert lines == ["scoring: 4/20 (20 %), 12 s", "scoring: 8/20 (40 %), 24 s", "scoring: 12/20 (60 %), 36 s",
                     "scoring: 16/20 (80 %), 48 s", "scoring: 20/20 (100 %), 60 s"]
    quiet = io.StringIO()
    for _ in PlainProgress(Console(file=quiet), disable=True).track(range(3), description="x"):
        pass
    assert quiet.getvalue() == ""


def test_track_without_a_total_counts_items() -> None:
    out = io.StringIO()
    assert list(track(iter("abc"), "reading", console=Console(file=out, width=200))) == ["a", "b", "c"]
    assert out.getvalue() == ""  # no total: nothing completes, and no interval passed
    assert list(track("abc", "reading", console=Console(file=out, width=200))) == ["a", "b", "c"]
    assert out.getvalue().startswith("reading: 3/3 (100 %)")


def test_piped_synth_prints_progress_lines(tmp_path: Path) -> None:
    from dermx.cli import app

    result = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "synth"), "--n-images", "3",
                                      "--image-size", "32x40"])
    assert result.exit_code == 0, result.output
    assert "synthesising: 3/3 (100 %)" in result.output


def test_training_progress_as_plain_lines() -> None:
    import lightning as L
    import torch

    from dermx.train.fitting import PlainProgressBar

    class Tiny(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch: list[torch.Tensor], _: int) -> torch.Tensor:
            loss = torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])
            self.log("train/loss", loss, on_epoch=True, on_step=False)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.TensorDataset(torch.randn(8, 2), torch.randn(8, 1))
    out = io.StringIO()
    trainer = L.Trainer(max_epochs=2, callbacks=[PlainProgressBar(Console(file=out, width=200), interval=0.0)],
                        logger=False, enable_checkpointing=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=2))
    lines = out.getvalue().splitlines()
    assert "epoch 1/2: 4/4 (100 %)" in "\n".join(lines) and lines[-1].startswith("epoch 2/2 done: train/loss ")


def test_epoch_lines_leave_out_lightnings_step_and_epoch_copies() -> None:
    from dermx.train.fitting import shown_metrics

    logged = {"val/loss": 1.5, "train/loss": 2.0, "train/loss_step": 2.5, "train/loss_epoch": 2.0, "lr_epoch": 0.1}
    assert shown_metrics(logged) == {"lr_epoch": 0.1, "train/loss": 2.0, "val/loss": 1.5}
