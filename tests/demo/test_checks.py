"""The demo's verdicts on hand-made summaries: each check passes and fails where it should."""

from __future__ import annotations

import copy
from typing import Any

from dermx.demo import demo_checks


def _e(mean: float, low: float, high: float) -> dict[str, float]:
    return {"mean": mean, "low": low, "high": high}


SUMMARY: dict[str, Any] = {
    "headline": [
        {"source": "DermX", "type": "model", "diagnosis_f1": _e(0.9, 0.85, 0.95), "char_dice": _e(0.2, 0.18, 0.22),
         "pointing": _e(0.2, 0.15, 0.25)},
        {"source": "DermX+", "type": "model", "diagnosis_f1": _e(0.92, 0.88, 0.96),
         "char_dice": _e(0.32, 0.29, 0.35), "pointing": _e(0.4, 0.36, 0.44)},
        {"source": "raters, leave-one-out", "type": "raters", "char_dice": {"mean": 0.62, "sd": 0.2}},
        {"source": "baseline: gaussian", "type": "baseline", "char_dice": _e(0.17, 0.15, 0.19),
         "pointing": _e(0.15, 0.12, 0.18)},
        {"source": "baseline: uniform", "type": "baseline", "char_dice": _e(0.1, 0.09, 0.12),
         "pointing": _e(0.06, 0.05, 0.07)},
    ],
    "paired": [{"a": "DermX", "b": "DermX+", "kind": "characteristic", "score": "dice",
                "difference": _e(-0.12, -0.13, -0.1)},
               {"a": "DermX", "b": "DermX+", "kind": "diagnosis-union", "score": "dice",
                "difference": _e(0.5, 0.4, 0.6)}],
    "shortcut": {"class": "Psoriasis", "models": {
        "DermX": {"Psoriasis": {"watermark": {"mean": 0.2}, "area_watermark": 0.05}},
        "DermX+": {"Psoriasis": {"watermark": {"mean": 0.1}, "area_watermark": 0.05}}}},
}


def _verdicts(summary: dict[str, Any]) -> dict[str, bool]:
    return {c.name: c.passed for c in demo_checks(summary)}


def test_all_pass_and_the_paired_sign_follows_the_order_of_a_and_b() -> None:
    assert _verdicts(SUMMARY) == dict.fromkeys(("dice", "beats baselines", "paired", "diagnosis", "shortcut"), True)
    swapped = copy.deepcopy(SUMMARY)
    swapped["paired"][0] |= {"a": "DermX+", "b": "DermX", "difference": _e(0.12, 0.1, 0.13)}
    assert _verdicts(swapped)["paired"]
    swapped["paired"][0]["difference"] = _e(0.01, -0.01, 0.03)
    assert not _verdicts(swapped)["paired"]


def test_each_check_fails_on_its_own_figure() -> None:
    low_dice = copy.deepcopy(SUMMARY)
    low_dice["headline"][1]["char_dice"] = _e(0.29, 0.2, 0.33)
    assert _verdicts(low_dice) == {**_verdicts(SUMMARY), "dice": False}  # CI low 0.20 still above 0.19
    overlap = copy.deepcopy(SUMMARY)
    overlap["headline"][1]["pointing"] = _e(0.3, 0.17, 0.4)  # CI low below the Gaussian's CI high 0.18
    assert _verdicts(overlap) == {**_verdicts(SUMMARY), "beats baselines": False}
    weak = copy.deepcopy(SUMMARY)
    weak["headline"][0]["diagnosis_f1"] = _e(0.77, 0.7, 0.83)
    assert _verdicts(weak) == {**_verdicts(SUMMARY), "diagnosis": False}
    no_logo = copy.deepcopy(SUMMARY)
    no_logo["shortcut"]["models"]["DermX"]["Psoriasis"]["watermark"]["mean"] = 0.14  # 2.8x
    assert _verdicts(no_logo) == {**_verdicts(SUMMARY), "shortcut": False}


def _stamped(flips: tuple[float, float, float], ratio: tuple[float, float, float] | None) -> dict[str, Any]:
    return {"n": 150, "flip_rate": _e(*flips), "n_flipped": round(150 * flips[0]),
            "energy_ratio": None if ratio is None else _e(*ratio)}


def test_the_counterfactual_shortcut_test_decides_when_present() -> None:
    with_test = copy.deepcopy(SUMMARY)
    with_test["shortcut"]["models"]["DermX"]["Psoriasis"]["watermark"]["mean"] = 0.1  # natural images: 2x only
    with_test["shortcut_test"] = {"class": "Psoriasis", "models": {
        "DermX": _stamped((0.4, 0.32, 0.48), (3.2, 2.8, 3.6)), "DermX+": _stamped((0.17, 0.1, 0.24), (4.0, 3.1, 4.9))}}
    checks = {c.name: c for c in demo_checks(with_test)}
    assert checks["shortcut"].passed
    assert "flips 40% of 150 to Psoriasis" in checks["shortcut"].detail and "natural images 2.0×" in checks[
        "shortcut"].detail
    # a high ratio counts only for a model that learned the logo (flip-rate CI above 0)
    unlearned = copy.deepcopy(with_test)
    unlearned["shortcut_test"]["models"] = {"DermX": _stamped((0.01, 0.0, 0.03), (5.0, 1.0, 9.0)),
                                            "DermX+": _stamped((0.2, 0.1, 0.3), (2.5, 2.0, 3.0))}
    checks = {c.name: c for c in demo_checks(unlearned)}
    assert not checks["shortcut"].passed and "(not learned)" in checks["shortcut"].detail
    nothing = copy.deepcopy(with_test)
    nothing["shortcut_test"]["models"]["DermX"] = _stamped((0.0, 0.0, 0.0), None)
    nothing["shortcut_test"]["models"]["DermX+"] = _stamped((0.0, 0.0, 0.0), None)
    detail = {c.name: c for c in demo_checks(nothing)}["shortcut"]
    assert not detail.passed and "no flipped image to map" in detail.detail


def test_beats_baselines_is_the_reports_flag_rule() -> None:
    """One rule: the demo's check passes exactly when the report flags neither DermX+ cell."""
    from dermx.report.verdict import flags

    variants = []
    for low in (0.1, 0.16, 0.18, 0.19, 0.2):
        summary = copy.deepcopy(SUMMARY)
        summary["headline"][1]["pointing"] = _e(0.3, low, 0.4)
        variants.append(summary)
    missing = copy.deepcopy(SUMMARY)
    del missing["headline"][1]["char_dice"]
    for summary in variants:
        flagged = {score for (model, score) in flags(summary) if model == "DermX+"} & {"char_dice", "pointing"}
        assert _verdicts(summary)["beats baselines"] == (not flagged)
    assert [_verdicts(s)["beats baselines"] for s in variants] == [False, False, False, True, True]
    assert not _verdicts(missing)["beats baselines"]  # no estimate is no evidence
