"""The calibration a checkpoint carries (dermx.trust.fitted): fitted on validation logits, applied later."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from dermx.trust.calibration import ece
from dermx.trust.fitted import MIN_GROUP, ModelCalibration, fit_model_calibration


def _data(n: int, seed: int, temperature: float, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits whose labels are drawn from ``softmax(z / temperature)``: the true temperature is known."""
    rng = np.random.default_rng(seed)
    z = torch.from_numpy(rng.normal(0, 3, (n, k)))
    p = torch.softmax(z / temperature, dim=1).numpy()
    y = torch.tensor([rng.choice(k, p=row) for row in p])
    return z, y


def test_recovers_the_temperature_and_covers_held_out_images() -> None:
    z, y = _data(4000, 0, 2.0)
    fitted = fit_model_calibration(z[:2000], y[:2000], alpha=0.1, score="lac", group_key=None)
    assert fitted.temperature == pytest.approx(2.0, rel=0.1)
    before = ece(torch.softmax(z[2000:], 1), y[2000:])
    after = ece(fitted.probabilities(z[2000:]), y[2000:])
    assert after < before / 2
    sets = fitted.sets(fitted.probabilities(z[2000:]))
    coverage = sets[torch.arange(2000), y[2000:]].double().mean().item()
    assert 0.88 <= coverage <= 0.93


def test_groups_get_their_own_temperature_and_threshold_when_large_enough() -> None:
    (z1, y1), (z2, y2) = _data(600, 1, 1.0), _data(600, 2, 3.0)
    few = MIN_GROUP - 1
    z, y = torch.cat([z1, z2, z1[:few]]), torch.cat([y1, y2, y1[:few]])
    groups = ["light"] * 600 + ["dark"] * 600 + ["rare"] * few
    fitted = fit_model_calibration(z, y, groups)
    assert fitted.group_temperatures["light"] == pytest.approx(1.0, rel=0.15)
    assert fitted.group_temperatures["dark"] == pytest.approx(3.0, rel=0.15)
    assert "rare" not in fitted.group_temperatures and fitted.temperature_of("rare") == fitted.temperature
    assert fitted.group_counts == {"dark": 600, "light": 600, "rare": few}
    assert set(fitted.group_thresholds) == {"dark", "light", "rare"}
    assert fitted.threshold_of("unseen") == fitted.threshold


def test_abstention_threshold_reads_the_validation_curve() -> None:
    z, y = _data(1000, 3, 1.0)
    fitted = fit_model_calibration(z, y, group_key=None)
    strict, loose = fitted.abstention_threshold(0.05), fitted.abstention_threshold(0.5)
    assert loose <= strict
    risks = {t: r for t, _, r in fitted.risk_curve}
    assert risks[loose] <= 0.5 and (math.isinf(strict) or risks[strict] <= 0.05)
    assert fitted.abstention_threshold(0.0) == math.inf or risks[fitted.abstention_threshold(0.0)] == 0.0


def test_the_record_round_trips_through_strict_json_with_an_infinite_threshold() -> None:
    z, y = _data(40, 4, 1.0)
    fitted = fit_model_calibration(z, y, ["a"] * 30 + ["b"] * 10, alpha=0.05)
    assert math.isinf(fitted.group_thresholds["b"])  # 10 images < 1/α − 1 = 19: every class
    text = json.dumps(fitted.to_dict(), allow_nan=False)
    assert ModelCalibration.from_dict(json.loads(text)) == fitted
    with pytest.raises(ValueError, match="unknown keys \\['bogus'\\]"):
        ModelCalibration.from_dict({**fitted.to_dict(), "bogus": 1})


def test_a_temperature_is_applied_only_when_it_helps_on_held_out_patients() -> None:
    """Over-confident logits (true T = 3): the cross-fitted check keeps the fitted T. Calibrated logits
    plus a few wrong answers at huge confidence: the NLL fit follows the outliers (T well above 1), which
    makes the rest under-confident; the held-out folds show it, so T stays 1."""
    from dermx.trust.fitted import check_temperature

    z, y = _data(400, 7, 3.0)
    patients = [str(i // 2) for i in range(400)]
    hot = check_temperature(z, y, patients)
    assert hot.applied and hot.fitted == pytest.approx(3.0, rel=0.15) and hot.folds == 5
    assert hot.ece_cross_fitted < hot.ece_baseline
    assert fit_model_calibration(z, y, patients=patients, group_key=None).temperature == hot.fitted

    z, y = _data(400, 8, 1.0)
    wrong = torch.arange(12)
    z[wrong] = 0.0
    z[wrong, (y[wrong] + 1) % z.shape[1]] = 40.0  # certain and wrong
    cold = check_temperature(z, y, patients)
    assert cold.fitted > 1.5 and not cold.applied and cold.ece_cross_fitted >= cold.ece_baseline
    fitted = fit_model_calibration(z, y, patients=patients, group_key=None)
    assert fitted.temperature == 1.0
    assert fitted.temperature_checks["all"]["applied"] is False
    assert fitted.temperature_checks["all"]["fitted"] == pytest.approx(cold.fitted)


def test_a_group_temperature_is_checked_against_the_overall_one() -> None:
    from dermx.trust.fitted import check_temperature

    z, y = _data(300, 9, 2.0)
    check = check_temperature(z, y, baseline=2.0)
    assert check.baseline == 2.0
    assert check.ece_baseline == pytest.approx(ece(torch.softmax(z / 2.0, 1), y))
    lone = check_temperature(z[:10], y[:10], ["p"] * 10)
    assert not lone.applied and math.isnan(lone.ece_cross_fitted) and lone.folds == 1
    fitted = fit_model_calibration(z[:10], y[:10], patients=["p"] * 10, group_key=None)
    assert fitted.temperature == 1.0 and fitted.temperature_checks["all"]["ece_cross_fitted"] is None
    assert json.loads(json.dumps(fitted.to_dict(), allow_nan=False)) == fitted.to_dict()


def test_a_temperature_at_the_bound_of_its_search_is_never_applied() -> None:
    """Validation logits that separate the classes: the NLL asks for T -> 0 and the ECE of certain, right
    answers is 0, but applying T would make every later answer certain."""
    from dermx.trust.fitted import check_temperature

    rng = np.random.default_rng(11)
    y = torch.from_numpy(rng.integers(0, 4, 120))
    z = torch.from_numpy(rng.normal(0, 0.5, (120, 4)))
    z[torch.arange(120), y] += 3.0
    check = check_temperature(z, y, [str(i // 2) for i in range(120)])
    assert check.at_bound and check.fitted == pytest.approx(0.05) and not check.applied
    assert fit_model_calibration(z, y, group_key=None).temperature == 1.0
