"""The demo's verdicts on hand-made summaries: each check passes and fails where it should, reading CIs."""

from __future__ import annotations

import copy
from typing import Any

from dermx.demo import demo_checks
from dermx.demo.checks import finding


def _e(mean: float, low: float, high: float) -> dict[str, float]:
    return {"mean": mean, "low": low, "high": high}


def _versus(dice_low: float, pointing_low: float) -> dict[str, dict[str, Any]]:
    """Paired differences DermX+ − each baseline on Dice and pointing, with the given lowest CI bound."""
    return {"char_dice": {b: _e(0.1, dice_low + k * 0.02, 0.2) for k, b in enumerate(("gaussian", "uniform"))},
            "pointing": {b: _e(0.2, pointing_low + k * 0.02, 0.3) for k, b in enumerate(("gaussian", "uniform"))}}


SUMMARY: dict[str, Any] = {
    "headline": [
        {"source": "DermX", "type": "model", "diagnosis_f1": _e(0.9, 0.85, 0.95), "char_dice": _e(0.2, 0.18, 0.22)},
        {"source": "DermX+", "type": "model", "diagnosis_f1": _e(0.92, 0.88, 0.96), "char_dice": _e(0.32, 0.29, 0.35)},
    ],
    "versus_baselines": {"DermX+": _versus(0.05, 0.1), "DermX": _versus(-0.01, 0.02)},
    "paired": [{"a": "DermX", "b": "DermX+", "kind": "characteristic", "score": "dice",
                "difference": _e(-0.12, -0.13, -0.1)},
               {"a": "DermX", "b": "DermX+", "kind": "diagnosis-union", "score": "dice",
                "difference": _e(0.5, 0.4, 0.6)}],
    "shortcut": {"class": "Psoriasis", "models": {
        "DermX": {"Psoriasis": {"watermark": {"mean": 0.1}, "area_watermark": 0.05}},
        "DermX+": {"Psoriasis": {"watermark": {"mean": 0.1}, "area_watermark": 0.05}}}},
    "shortcut_test": {"class": "Psoriasis", "models": {
        "DermX": {"n": 150, "flip_rate": _e(0.4, 0.32, 0.48), "energy_ratio": _e(3.2, 2.8, 3.6)},
        "DermX+": {"n": 150, "flip_rate": _e(0.17, 0.1, 0.24), "energy_ratio": _e(4.0, 3.1, 4.9)}}},
}
NAMES = ("beats baselines", "guided attention", "diagnosis", "shortcut")


def _verdicts(summary: dict[str, Any]) -> dict[str, bool]:
    return {c.name: c.passed for c in demo_checks(summary)}


def test_all_pass_and_the_paired_sign_follows_the_order_of_a_and_b() -> None:
    assert _verdicts(SUMMARY) == dict.fromkeys(NAMES, True)
    swapped = copy.deepcopy(SUMMARY)
    swapped["paired"][0] |= {"a": "DermX+", "b": "DermX", "difference": _e(0.12, 0.1, 0.13)}
    assert _verdicts(swapped)["guided attention"]
    swapped["paired"][0]["difference"] = _e(0.01, -0.01, 0.03)
    assert not _verdicts(swapped)["guided attention"]


def test_each_check_fails_on_its_own_interval() -> None:
    """A point estimate on the right side of a threshold is not enough: the interval must be."""
    touching = copy.deepcopy(SUMMARY)
    touching["versus_baselines"]["DermX+"]["pointing"]["gaussian"] = _e(0.15, -0.001, 0.3)  # mean well above 0
    assert _verdicts(touching) == {**_verdicts(SUMMARY), "beats baselines": False}
    weak = copy.deepcopy(SUMMARY)
    weak["headline"][0]["diagnosis_f1"] = _e(0.85, 0.78, 0.9)  # mean above the published 0.79, the CI not
    assert _verdicts(weak) == {**_verdicts(SUMMARY), "diagnosis": False}
    blind = copy.deepcopy(SUMMARY)
    for entry in blind["shortcut_test"]["models"].values():
        entry["energy_ratio"] = _e(1.4, 0.9, 1.9)  # a map blind to the logo scores 1: not excluded
    assert _verdicts(blind) == {**_verdicts(SUMMARY), "shortcut": False}


def test_the_counterfactual_shortcut_counts_only_a_learned_logo() -> None:
    checks = {c.name: c for c in demo_checks(SUMMARY)}
    assert "flips 40% [32%, 48%] of 150 to Psoriasis" in checks["shortcut"].detail
    assert "natural images 2.0×" in checks["shortcut"].detail
    unlearned = copy.deepcopy(SUMMARY)
    unlearned["shortcut_test"]["models"] = {"DermX": {"n": 150, "flip_rate": _e(0.01, 0.0, 0.03),
                                                      "energy_ratio": _e(5.0, 2.0, 9.0)}}
    checks = {c.name: c for c in demo_checks(unlearned)}
    assert not checks["shortcut"].passed and "(not learned)" in checks["shortcut"].detail
    nothing = copy.deepcopy(SUMMARY)
    nothing["shortcut_test"]["models"] = {"DermX": {"n": 150, "flip_rate": _e(0.0, 0.0, 0.0), "energy_ratio": None}}
    detail = {c.name: c for c in demo_checks(nothing)}["shortcut"]
    assert not detail.passed and "no flipped image to map" in detail.detail
    assert not _verdicts({**SUMMARY, "shortcut_test": None})["shortcut"]


def test_beats_baselines_is_the_reports_flag_rule() -> None:
    """One rule: the demo's check passes exactly when the report flags neither DermX+ cell."""
    from dermx.report.verdict import flags

    for low in (-0.05, -0.001, 0.0, 0.001, 0.05):
        summary = copy.deepcopy(SUMMARY)
        summary["versus_baselines"]["DermX+"]["char_dice"]["uniform"] = _e(0.1, low, 0.2)
        flagged = {column for (model, column) in flags(summary) if model == "DermX+"}
        assert _verdicts(summary)["beats baselines"] == (not flagged) == (low > 0)
    missing = copy.deepcopy(SUMMARY)
    del missing["versus_baselines"]["DermX+"]["pointing"]
    assert not _verdicts(missing)["beats baselines"]  # not tested is no evidence


def test_checks_are_worded_as_findings() -> None:
    by_name = {c.name: c for c in demo_checks(SUMMARY)}
    assert finding(by_name["shortcut"]).startswith("a model learned the watermark shortcut, and its map shows it:")
    assert finding(by_name["guided attention"]).startswith("guided attention improves the characteristic maps")
