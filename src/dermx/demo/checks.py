"""What the demo must show, checked on its ``summary.json``: the verdicts printed under the headline.

On the synthetic set the right answer is known, so the demo states what guided attention does and
checks it (each check reads estimates with their 95 % bootstrap CIs over images):

- ``dice``: DermX+'s characteristic-map Dice ≥ 0.30 (a third of the way from the best baseline to the
  raters' leave-one-out agreement in the demo's first measurements);
- ``beats baselines``: DermX+'s Dice and pointing game above every baseline map by the report's rule
  (:func:`dermx.report.verdict.flags`: the 95 % CI entirely above each baseline's);
- ``paired``: DermX+ above DermX on characteristic-map Dice, the paired-bootstrap CI of the difference
  (same images, same pairs) excluding 0;
- ``diagnosis``: diagnosis macro-F1 ≥ 0.85 for both models;
- ``shortcut``: a model learned the watermark (stamping it on other classes' test images turns some of
  them into the shortcut class: flip-rate CI above 0, :mod:`dermx.evaluate.benchmark.shortcut`), and on those
  images its map of the shortcut class puts ≥ 3× the logo's area share of its energy on the logo. The
  same ratio on naturally watermarked images of the class is printed beside it; there the class's own
  lesions share the evidence with the logo, so it reads lower. Runs without the counterfactual test
  (older ``summary.json``) are checked on the natural images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dermx.report.verdict import flags

DICE_GOAL = 0.30
DIAGNOSIS_GOAL = 0.85
SHORTCUT_RATIO = 3.0
GUIDED, PLAIN = "DermX+", "DermX"


@dataclass(frozen=True)
class Check:
    """One verdict: what was checked, the figures it read, and whether it holds."""

    name: str
    passed: bool
    detail: str


def _value(estimate: dict[str, Any] | None, key: str = "mean") -> float:
    value = (estimate or {}).get(key)
    return math.nan if value is None else float(value)


def _row(summary: dict[str, Any], source: str) -> dict[str, Any]:
    for row in summary["headline"]:
        if row["source"] == source:
            return row
    raise KeyError(f"no headline row {source!r}")


def _beats_baselines(summary: dict[str, Any], model: dict[str, Any]) -> Check:
    baselines = [r for r in summary["headline"] if r["type"] == "baseline"]
    flagged = flags(summary)
    notes, passed = [], True
    for score in ("char_dice", "pointing"):
        best = max(baselines, key=lambda r: _value(r.get(score), "high"))
        low, high = _value(model.get(score), "low"), _value(best.get(score), "high")
        passed &= not math.isnan(_value(model.get(score))) and (model["source"], score) not in flagged
        notes.append(f"{score}: CI low {low:.3f} vs best baseline ({best['source'].removeprefix('baseline: ')}) "
                     f"CI high {high:.3f}")
    return Check("beats baselines", passed, "; ".join(notes))


def _paired(summary: dict[str, Any]) -> Check:
    for entry in summary["paired"]:
        if entry["kind"] == "characteristic" and entry["score"] == "dice" and {entry["a"], entry["b"]} == {
                GUIDED, PLAIN}:
            sign = 1.0 if entry["a"] == GUIDED else -1.0
            bounds = sorted(sign * _value(entry["difference"], k) for k in ("low", "high"))
            mean = sign * _value(entry["difference"])
            return Check("paired", bounds[0] > 0,
                         f"DermX+ − DermX Dice {mean:+.3f} [{bounds[0]:+.3f}, {bounds[1]:+.3f}]")
    return Check("paired", False, "no paired DermX+ / DermX characteristic Dice comparison in the summary")


def _natural_ratios(summary: dict[str, Any]) -> dict[str, float]:
    block = summary.get("shortcut")
    if not block:
        return {}
    ratios = {}
    for model, per_class in block["models"].items():
        entry = per_class[block["class"]]
        ratios[model] = _value(entry["watermark"]) / entry["area_watermark"] if entry["area_watermark"] else math.nan
    return ratios


def _shortcut(summary: dict[str, Any]) -> Check:
    natural = _natural_ratios(summary)
    test = summary.get("shortcut_test")
    if not test:
        if not natural:
            return Check("shortcut", False, "no watermark in the test images")
        detail = ", ".join(f"{m} {r:.1f}×" for m, r in natural.items())
        return Check("shortcut", any(r >= SHORTCUT_RATIO for r in natural.values()),
                     f"energy share on the watermark / its area share: {detail}")
    notes, passed = [], False
    for model, entry in test["models"].items():
        flips, ratio = entry.get("flip_rate"), entry.get("energy_ratio")
        learned = _value(flips, "low") > 0
        shown = learned and _value(ratio) >= SHORTCUT_RATIO
        passed |= shown
        ratio_text = (f"map energy on the logo {_value(ratio):.1f}× [{_value(ratio, 'low'):.1f}, "
                      f"{_value(ratio, 'high'):.1f}] its area" if ratio else "no flipped image to map")
        notes.append(f"{model}: logo flips {_value(flips):.0%} of {entry['n']} to {test['class']}"
                     f"{'' if learned else ' (not learned)'}, {ratio_text}; natural images "
                     f"{natural.get(model, math.nan):.1f}×")
    return Check("shortcut", passed, "; ".join(notes))


def demo_checks(summary: dict[str, Any]) -> list[Check]:
    """Every check of the module docstring on a demo's ``summary.json`` document."""
    guided, plain = _row(summary, GUIDED), _row(summary, PLAIN)
    dice = _value(guided.get("char_dice"))
    f1 = {name: _value(row.get("diagnosis_f1")) for name, row in ((GUIDED, guided), (PLAIN, plain))}
    return [
        Check("dice", dice >= DICE_GOAL, f"DermX+ characteristic-map Dice {dice:.3f} (goal ≥ {DICE_GOAL})"),
        _beats_baselines(summary, guided),
        _paired(summary),
        Check("diagnosis", all(v >= DIAGNOSIS_GOAL for v in f1.values()),
              ", ".join(f"{m} macro-F1 {v:.3f}" for m, v in f1.items()) + f" (goal ≥ {DIAGNOSIS_GOAL})"),
        _shortcut(summary),
    ]
