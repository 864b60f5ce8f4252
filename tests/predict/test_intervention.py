"""Setting a characteristic and seeing the diagnosis change (dermx.models.intervention): a known answer.

The network is hand-built so that its diagnosis is a fixed linear function of its characteristic logits,
``z_dx = W z_char + b`` (the side channel ``h`` weighted 0); setting characteristic j to present replaces
``z_char[j]`` by the rule's 95th percentile, absent by its 5th. The prediction must equal
``softmax(W z' + b)`` to float precision, through Python and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dermx.cli import app
from dermx.models import load_checkpoint, save_checkpoint
from dermx.models.dermx_net import HIDDEN
from dermx.models.intervention import (
    InterventionError,
    InterventionRule,
    fit_intervention_rule,
    intervened,
    parse_setting,
)
from dermx.predict import Predictor
from predict.samples import photo_file, tiny_checkpoint
from support import plain

SETTING = {"Scale": True, "Pustule": False}


def linear_checkpoint(directory: Path) -> Path:
    """A tiny DermX whose diagnosis reads its characteristics only, through fixed W and b, with an
    intervention rule from made-up training logits."""
    model = load_checkpoint(tiny_checkpoint(directory))
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        weight = model.diagnosis_out.weight
        weight.zero_()
        weight[:, HIDDEN:] = torch.randn(weight.shape[0], weight.shape[1] - HIDDEN, generator=generator)
        model.diagnosis_out.bias.copy_(torch.randn(weight.shape[0], generator=generator))
    logits = torch.randn(40, len(model.config.characteristics), generator=generator) * 2
    model.config.interventions = fit_intervention_rule(logits, model.config.characteristics).to_dict()
    return save_checkpoint(model, directory)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return linear_checkpoint(tmp_path_factory.mktemp("linear"))


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return photo_file(tmp_path_factory.mktemp("image"))


def expected(checkpoint: Path, image: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``softmax(W z + b)`` without and with :data:`SETTING`, from the formula."""
    model = load_checkpoint(checkpoint)
    predictor = Predictor(model)
    x = predictor.prepare(image).tensor[None]
    with torch.no_grad():
        z = model(x)["characteristic"][0].double()
    rule = InterventionRule.from_dict(model.config.interventions or {})
    names = list(model.config.characteristics)
    z_set = z.clone()
    for name, present in SETTING.items():
        j = names.index(name)
        z_set[j] = rule.present[j] if present else rule.absent[j]
    w = model.diagnosis_out.weight[:, HIDDEN:].double()
    b = model.diagnosis_out.bias.double()
    before, after = ((w @ v + b).softmax(dim=0).detach().numpy() for v in (z, z_set))
    return before, after, list(model.config.diagnoses)


def _by_name(rows: list[tuple[str, float]] | list[dict[str, float]]) -> dict[str, float]:
    return dict(rows) if rows and isinstance(rows[0], tuple) else {r["name"]: r["probability"] for r in rows}  # type: ignore[index, union-attr]


def test_python_gives_the_formula(checkpoint: Path, image: Path) -> None:
    before, after, classes = expected(checkpoint, image)
    (prediction,) = Predictor(checkpoint).predict([image], set_characteristics=SETTING)
    shown = dict(prediction.diagnoses)
    assert [shown[c] for c in classes] == pytest.approx(after.tolist(), abs=1e-6)
    change = prediction.intervention
    assert change is not None and change.settings == SETTING
    assert [dict(change.before)[c] for c in classes] == pytest.approx(before.tolist(), abs=1e-6)
    assert [change.change[c] for c in classes] == pytest.approx((after - before).tolist(), abs=1e-6)
    characteristics = {c.name: c for c in prediction.characteristics}
    assert characteristics["Scale"].present and not characteristics["Pustule"].present
    assert "characteristic:Scale" not in prediction.maps  # a set characteristic has no map
    assert prediction.maps[f"diagnosis:{prediction.diagnosis}"].max() > 0  # the changed diagnosis's map
    (plain,) = Predictor(checkpoint).predict([image])
    assert plain.intervention is None
    assert [dict(plain.diagnoses)[c] for c in classes] == pytest.approx(before.tolist(), abs=1e-6)


def test_the_command_line_gives_the_formula(checkpoint: Path, image: Path) -> None:
    before, after, classes = expected(checkpoint, image)
    result = CliRunner().invoke(app, ["predict", str(image), "--model", str(checkpoint), "--json",
                                      "--set", "Scale=present", "--set", "Pustule=absent"])
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout[result.stdout.index("{"):])["predictions"]
    assert [_by_name(record["diagnoses"])[c] for c in classes] == pytest.approx(after.tolist(), abs=1e-6)
    assert record["intervention"]["set"] == {"Scale": "present", "Pustule": "absent"}
    assert [_by_name(record["intervention"]["before"])[c] for c in classes] == pytest.approx(before.tolist(),
                                                                                            abs=1e-6)


@pytest.mark.parametrize(("setting", "message"), [
    ("Colour=present", "unknown characteristic(s) ['Colour']; this model's characteristics: Closed comedo"),
    ("Scale=maybe", "cannot read 'Scale=maybe': write NAME=present or NAME=absent"),
    ("Scale", "write NAME=present or NAME=absent"),
])
def test_bad_names_and_values_are_usage_errors(checkpoint: Path, image: Path, setting: str, message: str) -> None:
    result = CliRunner().invoke(app, ["predict", str(image), "--model", str(checkpoint), "--set", setting])
    assert result.exit_code == 2, result.output
    assert "--set" in result.output and plain(message) in plain(result.output)


def test_models_that_cannot_take_an_intervention_say_why(tmp_path: Path, image: Path) -> None:
    dx_only = tiny_checkpoint(tmp_path / "dx-only", kind="dx-only")
    with pytest.raises(InterventionError, match="no characteristics"):
        Predictor(dx_only).predict([image], set_characteristics=SETTING)
    old = tiny_checkpoint(tmp_path / "old")  # no rule recorded
    with pytest.raises(InterventionError, match="records no intervention rule"):
        Predictor(old).predict([image], set_characteristics=SETTING)
    result = CliRunner().invoke(app, ["predict", str(image), "--model", str(dx_only), "--set", "Scale=present"])
    assert result.exit_code == 2 and "no characteristics" in result.output


def test_the_rule_and_the_hook_by_hand() -> None:
    logits = torch.arange(20.0).reshape(10, 2)  # columns 0, 2, ..., 18 and 1, 3, ..., 19
    rule = fit_intervention_rule(logits, ["A", "B"])
    assert rule.absent == pytest.approx((0.9, 1.9)) and rule.present == pytest.approx((17.1, 18.1))
    assert rule.values({"B": True, "A": False}) == {1: pytest.approx(18.1), 0: pytest.approx(0.9)}
    assert rule.mean == pytest.approx((9.0, 10.0))
    assert InterventionRule.from_dict(rule.to_dict()) == rule
    older = {k: v for k, v in rule.to_dict().items() if k != "mean"}  # a record from before the mean was kept
    assert InterventionRule.from_dict(older).mean is None
    with pytest.raises(InterventionError, match="malformed intervention record"):
        InterventionRule.from_dict({"characteristics": ["A"]})
    assert parse_setting(" Sun damage = Absent ") == ("Sun damage", False)
    head = torch.nn.Linear(3, 2)
    model = torch.nn.Module()
    model.characteristic_head = head
    x = torch.randn(4, 3)
    with intervened(model, {1: 7.0}):
        out = model.characteristic_head(x)
    assert torch.equal(out[:, 1], torch.full((4,), 7.0)) and torch.equal(out[:, 0], head(x)[:, 0])
    assert not head._forward_hooks  # removed on leaving the block
