"""The verdict names every skin tone whose gap to the rest has a CI excluding 0, and no other; a run folder
from before the trust keys still renders its report without the section."""

from __future__ import annotations

from typing import Any

from dermx.report.trust_section import trust_section
from dermx.report.verdict import group_gaps, verdict


def _gap(mean: float, low: float, high: float) -> dict[str, float]:
    return {"mean": mean, "low": low, "high": high, "level": 0.975}


def _summary(dice: dict[str, float], accuracy: dict[str, float]) -> dict[str, Any]:
    group = {"images": 40, "patients": 30, "gap": {"dice": dice, "accuracy": accuracy}}
    light = {"images": 148, "patients": 98, "gap": {"dice": _gap(0.05, 0.01, 0.09), "accuracy": accuracy}}
    return {"headline": [], "paired": [],
            "groups": {"by": "skin_tone", "models": {"DermX+": {"groups": {"dark": group, "light": light}}}}}


def test_a_gap_whose_ci_excludes_zero_is_named_with_its_interval() -> None:
    summary = _summary(_gap(-0.05, -0.09, -0.01), _gap(0.02, -0.03, 0.07))
    said = group_gaps(summary)
    assert ("DermX+: maps agree less with the experts on skin tone dark: Dice -0.050 [-0.090, -0.010] vs the rest "
            "(40 of 188 images; CI at 97.5 %).") in said
    assert any(s.startswith("DermX+: maps agree more with the experts on skin tone light") for s in said)
    assert not [s for s in said if "accurate" in s]  # the accuracy gaps' CIs include 0
    assert set(said) <= set(verdict(summary))


def test_no_gap_is_named_when_every_ci_includes_zero_or_the_run_has_no_groups() -> None:
    assert group_gaps(_summary(_gap(-0.05, -0.09, 0.001), _gap(0.0, -0.1, 0.1))) == [
        "DermX+: maps agree more with the experts on skin tone light: Dice +0.050 [+0.010, +0.090] vs the rest "
        "(148 of 188 images; CI at 97.5 %)."]
    summary = _summary(_gap(-0.05, -0.09, 0.001), _gap(0.0, -0.1, 0.1))
    summary["groups"]["models"]["DermX+"]["groups"]["light"]["gap"]["dice"] = _gap(0.05, -0.01, 0.09)
    assert group_gaps(summary) == []
    assert group_gaps({"headline": []}) == [] and trust_section({"headline": []}, str) == ""
