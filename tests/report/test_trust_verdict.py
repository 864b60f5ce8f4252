"""The verdict names every skin tone (or group of the run's own attribute) whose gap to the rest has a CI
excluding 0, and no other; a run folder from before the trust keys still renders its report without the
section."""

from __future__ import annotations

from typing import Any

from dermx.report.trust_section import trust_frame, trust_section
from dermx.report.verdict import gap_rule, group_gaps, verdict


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


def _estimate(mean: float, low: float, high: float, n: int = 16, n_group: int = 5) -> dict[str, float]:
    return {"mean": mean, "low": low, "high": high, "level": 0.975, "n": n, "n_group": n_group}


def _fitzpatrick() -> dict[str, Any]:
    """A run grouped by a groups file's attribute, with the leaderboard's deletion AUC per group and a
    calibration fitted per skin tone."""
    def group(images: int, deletion: dict[str, float]) -> dict[str, Any]:
        return {"images": images, "patients": images, "accuracy": _estimate(0.8, 0.7, 0.9),
                "deletion_auc": _estimate(0.3, 0.2, 0.4), "gap": {"deletion_auc": deletion}}

    coverage = {"mean": 0.9, "low": 0.8, "high": 0.95}
    return {"headline": [], "paired": [],
            "groups": {"by": "fitzpatrick", "deletion_auc": {"method": "gradcam", "steps": 8,
                                                            "images": "the first 16 test images of each fold"},
                       "models": {"DermX": {"groups": {"V": group(30, _estimate(0.08, 0.02, 0.14)),
                                                       "II": group(60, _estimate(-0.03, -0.09, 0.03, n_group=11))}}}},
            "calibration": {"DermX": {"bins": 15, "uncalibrated": None, "calibrated": {"groups": {}},
                                      "fitted": [{"temperature": 1.5, "group_key": "skin_tone",
                                                  "group_temperatures": {"dark": 1.2}, "validation_images": 80}]}},
            "conformal": {"DermX": {"alpha": 0.1, "marginal": {"groups": {"all": {"coverage": coverage},
                                                                          "V": {"coverage": coverage}},
                                                               "worst_group": "V"},
                                    "mondrian": {"worst_group": "V", "fallback": ["II", "V"]}}}}


def test_a_deletion_gap_is_named_with_the_attribute_and_the_images_it_was_computed_on() -> None:
    said = group_gaps(_fitzpatrick())
    assert said == ["DermX: maps are less faithful to the model (deleting what they highlight lowers its score more "
                    "slowly) on fitzpatrick V: gradcam deletion AUC +0.080 [+0.020, +0.140] vs the rest (5 of 16 "
                    "images; CI at 97.5 %)."]
    assert gap_rule("fitzpatrick").startswith("Groups: a fitzpatrick group is named when")
    assert gap_rule("skin_tone").startswith("Groups: a skin tone is named when")


def test_the_trust_section_names_the_attribute_and_shows_the_deletion_auc() -> None:
    summary = _fitzpatrick()
    section = trust_section(summary, lambda frame: frame.to_html())
    assert "<h2>Trust per fitzpatrick</h2>" in section and "Each fitzpatrick group against the rest" in section
    intro = section.split("</p>")[0]
    assert "Deletion AUC: the gradcam map of the predicted diagnosis" in intro and "skin tone" not in intro
    assert ("the calibration has no threshold per fitzpatrick group (its groups are values of skin tone): every "
            "fitzpatrick group uses the marginal one.") in section
    assert "T = 1.50 (per skin tone: dark 1.20)" in section and "No threshold of their own" not in section
    frame = trust_frame(summary, "DermX").set_index("fitzpatrick")
    assert frame.loc["V", "gradcam deletion AUC"] == "0.300 [0.200, 0.400]"
    assert frame.loc["V", "deletion AUC gap vs rest"] == "⚠ +0.080 [+0.020, +0.140]"
    assert frame.loc["II", "deletion AUC gap vs rest"] == "-0.030 [-0.090, +0.030]"
    del summary["groups"]["deletion_auc"]  # a run without a leaderboard: no such columns
    assert not [c for c in trust_frame(summary, "DermX").columns if "deletion" in c]
