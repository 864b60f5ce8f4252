from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dermx.demo.cli import register


@pytest.mark.slow
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
    summary = json.loads((out / "summary.json").read_text(), parse_constant=_no_constants)  # strict JSON
    for row in summary["headline"]:
        if row["type"] in ("model", "baseline"):
            assert {"mean", "low", "high"} <= set(row["char_dice"]) and {"mean", "low", "high"} <= set(row["pointing"])
    assert {"char_dice_drawn", "pointing_drawn"} <= set(summary["headline"][0])  # synthetic: the drawn truth
    paired = [p for p in summary["paired"] if p["kind"] == "characteristic" and p["score"] == "dice"]
    assert {paired[0]["a"], paired[0]["b"]} == {"DermX", "DermX+"} and "difference" in paired[0]
    assert summary["models"]["DermX+"]["map_grid"] == [4, 4]  # the quick run: 32 px at output stride 8
    assert set(summary["models"]) == {"DermX", "DermX+", "CBM"}
    assert 0 <= summary["diagnosis"]["DermX"]["accuracy"]["mean"] <= 1
    _the_bottleneck_is_dermxs_first_stage(out, summary)
    assert summary["shortcut"]["class"] == "Psoriasis"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["versions"]["torch"] and manifest["data"]["files"] > 0


def _the_bottleneck_is_dermxs_first_stage(out: Path, summary: dict) -> None:
    """The demo's concept bottleneck: DermX's backbone and characteristic head unchanged, a sequential head on
    the probabilities; every model's intervention curve measured and reported."""
    import torch

    from dermx.demo.pipeline import HEAD_INTERVENTIONS
    from dermx.models import load_checkpoint

    model = load_checkpoint(out / "models" / "cbm" / "model")
    dermx = load_checkpoint(out / "models" / "dermx" / "model")
    assert model.config.kind == "cbm" and model.config.bottleneck == "sequential"
    assert model.config.bottleneck_reads == "probabilities" and model.config.interventions is not None
    assert model.config.training_data["initial_weights"]["kind"] == "dermx"
    weights = dermx.state_dict()
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items() if not k.startswith("diagnosis_"))
    config = json.loads((out / "models" / "cbm" / "config.json").read_text())
    assert config["model"]["head_interventions"] == HEAD_INTERVENTIONS
    assert {"DermX", "DermX+", "CBM"} <= set(summary["interventions"]["models"])
    assert (out / "interventions.csv").is_file()
    assert "Clinician in the loop" in (out / "report.html").read_text()


@pytest.mark.slow
def test_demo_without_interventions_makes_no_bottleneck(tmp_path: Path) -> None:
    from dermx.demo.pipeline import DemoConfig, run_demo

    out = tmp_path / "demo"
    result = run_demo(DemoConfig.recipe("quick", out=out, interventions=False))
    assert set(result.summary["models"]) == {"DermX", "DermX+"} and "interventions" not in result.summary
    assert not (out / "models" / "cbm").exists() and not (out / "interventions.csv").exists()
    assert set(result.timings) == {"synth", "train DermX", "train DermX+", "explain+evaluate", "report"}


def _no_constants(token: str) -> None:
    raise AssertionError(f"summary.json holds the non-JSON token {token}")


def test_quiet_training_hides_lightning_info_and_restores_levels() -> None:
    import logging
    import warnings

    from dermx.train.quiet import QUIET_LOGGERS, quiet_training

    before = [logging.getLogger(n).level for n in QUIET_LOGGERS]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_training():
            assert not logging.getLogger("lightning.pytorch").isEnabledFor(logging.INFO)
            warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
            warnings.warn("something else", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else"]
    assert [logging.getLogger(n).level for n in QUIET_LOGGERS] == before


def test_demo_defaults_use_the_fine_grid_recipe(tmp_path: Path) -> None:
    from dermx.demo.pipeline import DemoConfig

    train = DemoConfig().train_config("dermx+", tmp_path, tmp_path / "cache", tmp_path / "out")
    assert (train.model.preset, train.optim.lr_schedule, train.optim.char_pos_weight, train.attention_weight) == (
        "tiny", "cosine", "balanced", 10.0)
    assert train.optim.ga_resolution == "features" and train.run.channels_last
    assert not train.model.pretrained and train.dataset.fold == 0
    baseline = DemoConfig().train_config("dermx", tmp_path, tmp_path / "cache", tmp_path / "out")
    # each model at its own peak learning rate (DemoConfig docstring); nothing else differs but the loss
    assert (train.optim.lr, baseline.optim.lr, baseline.attention_weight) == (2e-3, 1.2e-3, 0.0)
    assert baseline.replace(lr=2e-3).to_dict()["optim"] == train.to_dict()["optim"]


def test_named_recipes_apply_their_fields_then_the_given_changes() -> None:
    import pytest

    from dermx.demo.pipeline import DemoConfig

    long = DemoConfig.recipe("long", seed=2, epochs=None)
    assert (long.images, long.size, long.input_size, long.epochs, long.seed) == (3000, (128, 152), 96, 15, 2)
    assert DemoConfig.recipe() == DemoConfig() and DemoConfig.recipe("quick").epochs == 1
    with pytest.raises(ValueError, match="unknown demo recipe 'fast'"):
        DemoConfig.recipe("fast")


def test_strict_exits_non_zero_when_a_check_fails(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`dermx demo --strict-checks` turns a failed check into exit code 1 (a CI gate); without it the failure is
    printed and the command succeeds."""
    import dermx.demo.pipeline as pipeline
    from dermx.cli import app
    from dermx.demo.checks import Check

    def fake(config, console):  # type: ignore[no-untyped-def]
        report = tmp_path / "report.html"
        report.write_text("")
        summary = {"headline": []}
        checks = [Check("guided attention", False, "DermX+ − DermX Dice -0.010 [-0.030, +0.010]"),
                  Check("diagnosis", True, "fine")]
        return pipeline.DemoResult(tmp_path, report, summary, checks, {"synth": 1.0})

    monkeypatch.setattr(pipeline, "run_demo", fake)
    monkeypatch.setattr("dermx.report.terminal.headline_table", lambda summary: "headline")
    lenient = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "a")])
    assert lenient.exit_code == 0 and "✗ guided attention" in lenient.output
    strict = CliRunner().invoke(app, ["demo", "--strict-checks", "--out", str(tmp_path / "b")])
    assert strict.exit_code == 1 and "1 check(s) failed: guided attention (--strict-checks)" in strict.output


@pytest.mark.slow
def test_the_held_out_raters_protocol_trains_and_scores_on_different_raters(tmp_path: Path) -> None:
    """`dermx demo --held-out-raters`: the models' training record names raters 1-4, the references and the
    ceiling use raters 5-8 only, and the report says the models never learned from them."""
    import pandas as pd

    from dermx.cli import app
    from dermx.demo.pipeline import REFERENCE_RATERS, TRAINING_RATERS

    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--held-out-raters", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["raters"] == list(REFERENCE_RATERS)
    assert {info["trained_raters"] == list(TRAINING_RATERS) for info in summary["models"].values()} == {True}
    raters = set(pd.read_csv(out / "raters.csv")["rater"])
    assert raters <= set(REFERENCE_RATERS) and raters
    assert "none of whom the models learned from (held-out raters" in (out / "report.html").read_text()
