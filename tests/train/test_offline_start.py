"""Issue 25, a researcher's first hour: ``dermx train`` offline fails at once with the fix instead of
retrying the hub and falling back to random weights unasked; the real loading paths (a local file,
timm's weights from the cache) work; ``--recipe small-data`` and every default are shown in ``-h``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import timm
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from dermx.cli import app
from dermx.models import PretrainedUnavailableError, create_backbone
from dermx.train import TrainConfig, load_config
from dermx.train.config import RECIPES
from support import plain


@pytest.fixture
def hub_calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Offline, with empty weight caches; records every attempt to load timm's published weights."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    calls: list[str] = []
    create = timm.create_model

    def recording(name: str, pretrained: bool = False, **options: Any) -> torch.nn.Module:
        if pretrained:
            calls.append(name)
        return create(name, pretrained=pretrained, **options)

    monkeypatch.setattr(timm, "create_model", recording)
    return calls


def _train_args(tiny_db: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(tiny_db[0]), "--images", str(tiny_db[1]), "--kind", "dx-only", "--preset", "cpu",
            "--input-size", "32", "--epochs", "1", "--batch-size", "8", "--fold", "0", "--no-progress",
            "--cache-dir", str(out.parent / "cache"), "--out", str(out), *extra]


def test_train_offline_fails_at_once_naming_the_fixes(tiny_db: tuple[Path, Path], tmp_path: Path,
                                                      hub_calls: list[str]) -> None:
    """Old code: the hub was retried (about a minute), then random weights were used unasked."""
    out = tmp_path / "run"
    result = CliRunner().invoke(app, _train_args(tiny_db, out))
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    message = plain(result.output)
    for fix in ("--no-pretrained", "--recipe small-data", "--backbone-weights FILE", "--random-fallback",
                "offline mode"):
        assert fix in message, fix
    assert hub_calls == []  # no download was even attempted
    assert not out.exists()


def test_an_unreachable_hub_fails_after_one_request(monkeypatch: pytest.MonkeyPatch, hub_calls: list[str]) -> None:
    import socket

    from huggingface_hub import constants

    with socket.socket() as probe:  # a port nothing listens on: the connection is refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(PretrainedUnavailableError, match="did not answer"):
        create_backbone("resnet18", pretrained=True)
    assert hub_calls == []


def test_timm_weights_in_the_local_cache_load_without_network(tmp_path: Path, hub_calls: list[str]) -> None:
    """The hub path itself, offline: a weight file put where the Hugging Face cache keeps timm's."""
    from huggingface_hub import constants

    source = timm.create_model("resnet18", pretrained=False)
    torch.nn.init.normal_(source.conv1.weight)
    snapshot = Path(constants.HF_HUB_CACHE) / "models--timm--resnet18.a1_in1k" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abcd")
    save_file(source.state_dict(), str(snapshot / "model.safetensors"))
    backbone = create_backbone("resnet18", pretrained=True)
    torch.testing.assert_close(backbone.conv1.weight, source.conv1.weight)
    torch.testing.assert_close(backbone.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    assert backbone.weight_source == {"source": "hub", "name": "timm/resnet18.a1_in1k", "tag": "a1_in1k"}
    assert hub_calls == ["resnet18"]


@pytest.mark.slow
def test_train_from_a_local_backbone_weight_file(tiny_db: tuple[Path, Path], tmp_path: Path,
                                                 hub_calls: list[str]) -> None:
    from dermx.models.weights import sha256_of
    from dermx.train.fitting import model_from_config

    start = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    torch.nn.init.normal_(start.conv1[0].weight)
    weights = tmp_path / "resnet10t.pth"
    torch.save(start.state_dict(), weights)
    built = model_from_config(TrainConfig.of(preset="cpu", backbone_weights=str(weights)))
    torch.testing.assert_close(built.backbone.conv1[0].weight, start.conv1[0].weight)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, _train_args(tiny_db, out, "--backbone-weights", str(weights)))
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["model"]["backbone_weights"] == str(weights)
    record = json.loads((out / "model" / "config.json").read_text())["training_data"]["initial_weights"]
    assert record == {"source": "file", "file": "resnet10t.pth", "sha256": sha256_of(weights)}
    assert sha256_of(weights) in (out / "model" / "README.md").read_text()
    assert hub_calls == []


def test_the_old_weights_spelling_still_works_with_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[TrainConfig] = []
    monkeypatch.setattr("dermx.train.fitting.fit", lambda config: seen.append(config) or (_ for _ in ()).throw(
        ValueError("stop here")))
    weights = tmp_path / "w.pth"
    torch.save({}, weights)
    result = CliRunner().invoke(app, ["train", "--weights", str(weights), "--out", str(tmp_path / "o")])
    assert "`dermx train --weights` is deprecated" in result.output and "--backbone-weights" in result.output
    assert seen and seen[0].model.backbone_weights == str(weights)
    (tmp_path / "old.json").write_text(json.dumps({"model": {"weights": str(weights)}}))
    with pytest.warns(DeprecationWarning, match="'weights' is now 'backbone_weights'"):
        assert load_config(tmp_path / "old.json").model.backbone_weights == str(weights)


def test_a_recipe_brings_its_values_and_options_given_win(tmp_path: Path) -> None:
    small = TrainConfig.of(recipe="small-data")
    assert {k: v for k, v in small.to_dict()["optim"].items() if k in RECIPES["small-data"]} == {
        k: v for k, v in RECIPES["small-data"].items() if k in small.to_dict()["optim"]}
    assert (small.optim.lr, small.optim.lr_schedule, small.model.dropout, small.dataset.augment) == (
        3e-3, "cosine", 0.0, False)
    assert TrainConfig.of(recipe="small-data", lr=1e-3).optim.lr == 1e-3
    assert TrainConfig.of().optim.recipe == "paper" and TrainConfig.of().optim.lr == 5e-4
    (tmp_path / "c.yaml").write_text("lr: 0.002\nepochs: 7\n")
    from_file = load_config(tmp_path / "c.yaml", recipe="small-data")
    assert (from_file.optim.lr, from_file.optim.epochs, from_file.optim.batch_size) == (2e-3, 7, 16)
    assert load_config(tmp_path / "c.yaml", recipe="small-data", lr=1e-4).optim.lr == 1e-4
    assert TrainConfig.from_dict(small.to_dict()) == small
    with pytest.raises(ValueError, match="unknown recipe 'tiny-data'"):
        TrainConfig.of(recipe="tiny-data")


def test_train_help_shows_every_default_and_each_recipe_value() -> None:
    """Old code: every option's default was None, so ``-h`` showed none of the values a run would use."""
    import typer

    from dermx.train.cli import shown_default

    result = CliRunner().invoke(app, ["train", "-h"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    text = plain(result.output)
    defaults = TrainConfig.of().to_dict()
    checked = 0
    for option in typer.main.get_command(app).commands["train"].params:
        name = option.name
        section = next((s for s in defaults.values() if name in s), None)
        if section is None or (section[name] is None and not any(name in r for r in RECIPES.values())):
            continue
        shown = shown_default(name, switch=bool(option.secondary_opts))
        assert shown and f"[default: ({shown})]" in text, name
        checked += 1
    assert checked >= 30
    assert "[default: (0.0005; --recipe small-data: 0.003)]" in text


def test_the_readme_lists_every_train_option_with_its_default() -> None:
    """Old code: 13 options of ``dermx train`` were in no part of the README."""
    import typer

    from dermx.train.cli import shown_default

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("#### Every `dermx train` option", 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| `--"):
            flags, default, _ = (cell.strip() for cell in line.strip().strip("|").split(" | ", 2))
            rows[flags] = default
    options = [o for o in typer.main.get_command(app).commands["train"].params if o.name != "help"]
    for option in options:
        flags = " / ".join(f"`{n}`" for n in (*option.opts, *option.secondary_opts) if n.startswith("--"))
        assert flags in rows, f"README lacks {flags}"
        assert rows[flags] == (shown_default(option.name, switch=bool(option.secondary_opts)) or ""), flags
    assert len(rows) == len(options)
