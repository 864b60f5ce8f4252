"""Training ends by calibrating the exported model on its validation split (dermx.train.calibrate)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dermx.models import load_checkpoint
from dermx.models.checkpoint import model_calibration
from dermx.train import fit
from dermx.train.calibrate import calibration_record, skip_reason
from dermx.train.datamodule import DermXDataModule
from dermx.train.provenance import calibration_section
from train.conftest import tiny_config

pytestmark = pytest.mark.slow  # end-to-end runs: `make test`, not `make test-fast`


def test_a_trained_model_carries_its_validation_calibration(tiny_db: tuple[Path, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    config = tiny_config(tiny_db, tmp_path / "run")
    result = fit(config)
    record = json.loads((result.checkpoint_dir / "config.json").read_text())["calibration"]
    model = load_checkpoint(result.checkpoint_dir)
    fitted = model_calibration(model.config)
    assert fitted is not None and fitted.to_dict() == record
    # fitted on the 4 validation images (never the 12 test ones), grouped by DermXDB's skin tone
    assert fitted.n == 4 and fitted.group_key == "skin_tone" and fitted.group_counts == {"light": 4}
    data = DermXDataModule(config, model.config)
    data.setup()
    with torch.no_grad():
        z = torch.cat([model(b["image"])["diagnosis"] for b in data.val_dataloader()]).double()
    y = torch.tensor([item.diagnosis for item in data.parts["val"]])
    nll = [float(torch.nn.functional.cross_entropy(z / t, y)) for t in (fitted.temperature, 1.0)]
    assert nll[0] <= nll[1] + 1e-9  # the fitted temperature is no worse than none on those images
    assert f"calibration on 4 validation images: temperature {fitted.temperature:.3g}" in capsys.readouterr().err
    card = (result.checkpoint_dir / "README.md").read_text()
    assert "## Calibration" in card and "| light | 4 | overall (fewer than 30 images) |" in card
    assert model.config.interventions is None  # a dx-only model has nothing to set
    assert "None: a model without characteristics." in card


def test_a_split_that_cannot_be_calibrated_is_recorded_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    assert skip_reason(torch.tensor([2])) == "the validation split has 1 image(s); calibration needs at least 2"
    assert "one diagnosis class only" in (skip_reason(torch.tensor([1, 1, 1])) or "")
    assert skip_reason(torch.tensor([0, 1])) is None
    record = calibration_record("the validation split holds one diagnosis class only; a temperature needs at "
                                "least two")
    assert record == {"skipped": "the validation split holds one diagnosis class only; a temperature needs at "
                                 "least two"}
    assert "calibration skipped" in caplog.text
    assert calibration_section(record).startswith("Skipped: the validation split holds one diagnosis class")


def test_a_calibration_part_of_its_own_neither_trains_nor_selects(tiny_db: tuple[Path, Path], tmp_path: Path) -> None:
    """--calibration-fraction: patients held out of training and validation fit the calibration; the record,
    the training data record and the card say so."""
    config = tiny_config(tiny_db, tmp_path / "run", calibration_fraction=0.3)
    result = fit(config)
    model = load_checkpoint(result.checkpoint_dir)
    data = DermXDataModule(config, model.config)
    data.setup()
    parts = {name: {item.group for item in items} for name, items in data.parts.items()}
    assert parts["calibration"] and not parts["calibration"] & (parts["train"] | parts["val"] | parts["test"])
    fitted = model_calibration(model.config)
    assert fitted is not None and fitted.split == "calibration" and fitted.n == len(data.parts["calibration"])
    record = model.config.training_data
    assert record["n_calibration"] == len(data.parts["calibration"])
    assert {item.key for item in data.parts["calibration"]} <= set(record["images"])
    card = (result.checkpoint_dir / "README.md").read_text()
    assert f"Fitted on the {fitted.n} calibration images (patients that neither trained nor selected" in card
    assert f"{fitted.n} calibration images;" in card
