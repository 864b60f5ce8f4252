"""dermx.trust.selective: risk–coverage, AURC and the abstention threshold, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dermx.trust.selective import (
    aurc,
    clopper_pearson_upper,
    risk_coverage,
    selective_report,
    threshold_for_risk,
)

CONF = [0.9, 0.8, 0.7, 0.6]
OK = torch.tensor([True, False, True, False])


def test_risk_coverage_and_aurc_by_hand() -> None:
    curve = risk_coverage(CONF, OK)
    assert curve.coverage.tolist() == [0.25, 0.5, 0.75, 1.0]
    assert curve.risk.tolist() == pytest.approx([0.0, 0.5, 1 / 3, 0.5])
    assert aurc(CONF, OK) == pytest.approx((0 + 0.5 + 1 / 3 + 0.5) / 4)


def test_tied_confidences_are_answered_together() -> None:
    curve = risk_coverage([0.9, 0.7, 0.7, 0.5], torch.tensor([True, True, False, False]))
    assert curve.threshold.tolist() == [0.9, 0.7, 0.5]
    assert curve.risk.tolist() == pytest.approx([0.0, 1 / 3, 0.5])
    assert curve.aurc == pytest.approx(0.25 * 0 + 0.5 * (1 / 3) + 0.25 * 0.5)


def test_threshold_for_a_target_risk() -> None:
    rule = threshold_for_risk(CONF, OK, 0.4)  # risks 0, .5, .33, .5: the largest coverage with risk ≤ .4 is 3/4
    assert (rule.threshold, rule.coverage, rule.achievable) == (0.7, 0.75, True)
    assert rule.risk == pytest.approx(1 / 3)
    assert rule.answers([0.95, 0.7, 0.65]).tolist() == [True, True, False]
    cautious = threshold_for_risk(CONF, OK, 0.4, bound="clopper_pearson")
    assert not cautious.achievable and cautious.threshold == math.inf  # 4 images bound nothing below 0.4
    assert cautious.answers([0.99]).tolist() == [False]


def test_clopper_pearson_upper_bound() -> None:
    assert clopper_pearson_upper(0, 10, 0.95) == pytest.approx(1 - 0.05 ** (1 / 10))  # (1 − u)^n = 0.05
    assert clopper_pearson_upper(3, 3) == 1.0


def test_the_rule_per_group_on_test_rows() -> None:
    rng = np.random.default_rng(0)
    conf = rng.random(600)
    correct = torch.from_numpy(rng.random(600) < conf)  # confidence ranks errors: AURC below the error rate
    groups = np.array(["a", "b", "c"] * 200)
    rule = threshold_for_risk(conf[:300], correct[:300], 0.2)
    report = selective_report(conf, correct, rule, groups, clusters=np.arange(600) // 3, n_boot=100)
    assert set(report) == {"all", "a", "b", "c"}
    answered = conf >= rule.threshold
    assert report["all"].coverage.estimate == pytest.approx(answered.mean())
    wrong = (~correct.numpy())[answered]
    assert report["all"].risk.estimate == pytest.approx(wrong.mean())
    assert report["all"].aurc.estimate == pytest.approx(aurc(conf, correct))
    assert report["all"].aurc.estimate < (~correct.numpy()).mean()
    assert report["a"].aurc.unit == "patient" and report["a"].aurc.low < report["a"].aurc.high
    assert report["b"].coverage.n == 200


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="correct must be booleans"):
        risk_coverage(CONF, [1, 0, 1, 0])
    with pytest.raises(ValueError, match="target_risk must be in"):
        threshold_for_risk(CONF, OK, 1.5)
    with pytest.raises(ValueError, match="a group is named 'all'"):
        selective_report(CONF, OK, threshold_for_risk(CONF, OK, 0.5), ["all", "b", "b", "b"])


@pytest.mark.parametrize("decimals", [None, 1])
def test_the_vectorised_aurc_bootstrap_gives_the_per_resample_recomputation(decimals: int | None) -> None:
    """aurc_interval weighs rows instead of repeating them; it equals recomputing aurc on every resample's
    repeated rows, also with many tied confidences (rounded to 1 decimal)."""
    from dermx.trust.selective import aurc_interval
    from dermx.trust.uncertainty import statistic_interval

    rng = np.random.default_rng(3)
    confidence = torch.from_numpy(rng.uniform(0.2, 1.0, 120))
    if decimals is not None:
        confidence = torch.round(confidence, decimals=decimals)
    correct = torch.from_numpy(rng.uniform(size=120) < confidence.numpy())
    patients = [str(i // 4) for i in range(120)]
    fast = aurc_interval(confidence, correct, clusters=patients, n_boot=300, seed=4)
    slow = statistic_interval(lambda drawn: aurc(confidence[drawn], correct[drawn]), 120, clusters=patients,
                              n_boot=300, seed=4)
    assert (fast.estimate, fast.low, fast.high) == pytest.approx((slow.estimate, slow.low, slow.high), abs=1e-12)
    assert fast.estimate == pytest.approx(aurc(confidence, correct), abs=1e-12)
