"""Calibrated predictions: probabilities softmax(z / T), the diagnosis set, abstention, and the refusals of
calibration flags for a model without a calibration."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from dermx.cli import app
from dermx.models import CheckpointError, load_checkpoint
from dermx.models.checkpoint import model_calibration
from dermx.predict import Predictor, UncalibratedError
from predict.samples import calibrated_checkpoint, photo_file


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return calibrated_checkpoint(tmp_path_factory.mktemp("calibrated"))


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return photo_file(tmp_path_factory.mktemp("image"), "lesion.jpg", seed=3)


def _predict(args: list[str]) -> tuple[int, str, dict]:
    result = CliRunner().invoke(app, ["predict", *args, "--json"])
    document = json.loads(result.stdout) if result.exit_code == 0 else {}
    return result.exit_code, result.output, document


@pytest.mark.parametrize("tone", [None, "dark", "purple"])
def test_probabilities_are_softmax_of_logits_over_the_temperature_and_the_set_is_the_calibrations(
        calibrated: Path, image: Path, tone: str | None) -> None:
    code, output, document = _predict(["--model", str(calibrated), str(image),
                                       *(["--skin-tone", tone] if tone else [])])
    assert code == 0, output
    (prediction,) = document["predictions"]
    model = load_checkpoint(calibrated)
    fitted = model_calibration(model.config)
    assert fitted is not None
    temperature = fitted.group_temperatures["dark"] if tone == "dark" else fitted.temperature
    assert prediction["calibrated"] is True and prediction["temperature"] == pytest.approx(temperature)
    assert fitted.group_temperatures["dark"] != pytest.approx(fitted.temperature)  # the group's T is its own
    # the logits, computed here on the same model input
    with torch.no_grad():
        z = model(Predictor(calibrated).prepare(image).tensor[None])["diagnosis"].double()
    expected = torch.softmax(z / temperature, dim=1)[0]
    got = {d["name"]: d["probability"] for d in prediction["diagnoses"]}
    for k, name in enumerate(model.config.diagnoses):
        assert got[name] == pytest.approx(float(expected[k]), abs=1e-6)
    members = fitted.sets(expected[None], [tone] if tone else None)[0]
    in_order = [model.config.diagnoses[k] for k in torch.argsort(expected, descending=True).tolist() if members[k]]
    assert prediction["diagnosis_set"] == in_order and in_order
    assert prediction["set_coverage"] == pytest.approx(0.9)
    assert prediction["set_threshold"] == pytest.approx(fitted.threshold_of(tone))
    assert prediction["skin_tone"] == tone
    if tone == "purple":
        assert "not among the calibrated groups (dark, light)" in prediction["group_note"]
    assert prediction["abstain"] is False and prediction["reason"] is None
    assert prediction["diagnosis"] == prediction["diagnoses"][0]["name"]


def test_abstain_risk_zero_abstains_and_names_the_set(calibrated: Path, image: Path) -> None:
    code, output, document = _predict(["--model", str(calibrated), str(image), "--abstain-risk", "0"])
    assert code == 0, output
    (prediction,) = document["predictions"]
    fitted = model_calibration(load_checkpoint(calibrated).config)
    assert fitted is not None
    limit = fitted.abstention_threshold(0.0)
    assert prediction["abstain_threshold"] == ("inf" if math.isinf(limit) else pytest.approx(limit))
    assert prediction["diagnoses"][0]["probability"] < limit
    assert prediction["abstain"] is True and prediction["diagnosis"] is None
    names = prediction["diagnosis_set"]
    assert prediction["reason"] == "uncertain: " + (", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1
                                                    else names[0])
    assert len(prediction["diagnoses"]) == 6  # the ranked list stays
    assert document["model"]["calibration"]["temperature"] == pytest.approx(fitted.temperature)


def test_a_loose_target_risk_answers(calibrated: Path, image: Path) -> None:
    code, _, document = _predict(["--model", str(calibrated), str(image), "--abstain-risk", "1"])
    (prediction,) = document["predictions"]
    assert code == 0 and prediction["abstain"] is False and prediction["diagnosis"] is not None


def test_an_old_checkpoint_predicts_uncalibrated_and_refuses_the_calibration_flags(checkpoint: Path,
                                                                                  image: Path) -> None:
    assert "calibration" not in json.loads((checkpoint / "config.json").read_text())  # as written before
    assert load_checkpoint(checkpoint).config.calibration is None
    code, output, document = _predict(["--model", str(checkpoint), str(image)])
    (prediction,) = document["predictions"]
    assert code == 0 and prediction["calibrated"] is False and "diagnosis_set" not in prediction
    assert "records no calibration" in prediction["calibration_note"]
    for flag, value in (("--abstain-risk", "0.1"), ("--skin-tone", "dark")):
        code, output, _ = _predict(["--model", str(checkpoint), str(image), flag, value])
        assert code == 2 and flag in output and "needs a calibrated model" in output


def test_a_skipped_calibration_says_why(checkpoint: Path, tmp_path: Path) -> None:
    copy = tmp_path / "skipped"
    copy.mkdir()
    document = json.loads((checkpoint / "config.json").read_text())
    (copy / "model.safetensors").write_bytes((checkpoint / "model.safetensors").read_bytes())
    reason = "the validation split has 1 image(s); calibration needs at least 2"
    (copy / "config.json").write_text(json.dumps({**document, "calibration": {"skipped": reason}}))
    predictor = Predictor(copy)
    assert predictor.calibration is None and reason in predictor.calibration_note
    with pytest.raises(UncalibratedError, match="abstain_risk needs a calibrated model"):
        Predictor(copy, abstain_risk=0.1)
    (copy / "config.json").write_text(json.dumps({**document, "calibration": {"temperature": 1.0}}))
    with pytest.raises(CheckpointError, match=r"calibration: .*missing keys"):
        load_checkpoint(copy)
