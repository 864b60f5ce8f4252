from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from dermx.demo.cli import register


def test_demo_quick_end_to_end(tmp_path: Path) -> None:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """dermx"""

    register(app)
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "report:" in result.output and "DermX+" in result.output
    assert (out / "report.html").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["models"]) == {"DermX", "DermX+"}
    assert 0 <= summary["diagnosis"]["DermX"]["accuracy"]["mean"] <= 1
    assert summary["shortcut"]["class"] == "Psoriasis"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["versions"]["torch"] and manifest["data"]["files"] > 0


def test_quiet_training_hides_lightning_info_and_restores_levels() -> None:
    import logging
    import warnings

    from dermx.demo.pipeline import QUIET_LOGGERS, quiet_training

    before = [logging.getLogger(n).level for n in QUIET_LOGGERS]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_training():
            assert not logging.getLogger("lightning.pytorch").isEnabledFor(logging.INFO)
            warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
            warnings.warn("something else", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else"]
    assert [logging.getLogger(n).level for n in QUIET_LOGGERS] == before


def test_demo_defaults_use_the_cpu_recipe(tmp_path: Path) -> None:
    from dermx.demo.pipeline import DemoConfig

    train = DemoConfig().train_config("dermx+", tmp_path, tmp_path / "cache", tmp_path / "out")
    assert (train.preset, train.lr_schedule, train.char_pos_weight, train.attention_weight) == (
        "cpu", "cosine", "balanced", 10.0)
    assert not train.pretrained and train.fold == 0
