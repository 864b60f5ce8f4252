"""The report's verdict: what the headline's confidence intervals say, as sentences computed from them.

Rules (stated in the report beside the verdict):

- a model's score is *above* (*below*) a baseline when its 95 % CI lies entirely above (below) the
  baseline's 95 % CI; otherwise the two are *not distinguishable*. Non-overlapping intervals are a
  conservative test: "not distinguishable" does not mean "equal".
- a model whose score is not above every baseline on a localization column is *flagged* there.
- the share of the gap closed is ``(model − best baseline) / (ceiling − best baseline)``, with the
  ceiling the raters' score on the same column (leave-one-out for maps against raters, the fused map
  for maps against the drawn lesions), its range taken from the model's CI.
- two models differ when the paired bootstrap CI of their difference (same images and pairs)
  excludes 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: Headline columns on which a higher value is a better map and the baselines are comparable, with the
#: source row of the raters' ceiling (``None``: no ceiling) and the plain name used in sentences.
LOCALIZATION_COLUMNS: dict[str, tuple[str | None, str]] = {
    "char_dice": ("raters, leave-one-out", "characteristic-map Dice against the raters"),
    "union_dice": (None, "diagnosis-map Dice against the raters' union"),
    "pointing": (None, "pointing game"),
    "char_dice_drawn": ("raters, fused map", "characteristic-map Dice against the drawn lesions"),
    "pointing_drawn": (None, "pointing game against the drawn lesions"),
}
#: The column the first sentence of each model is about (the benchmark's main localization score).
MAIN_COLUMN = "char_dice"
#: Plain names of the paired comparisons' map kinds.
PAIRED_KINDS: dict[str, str] = {"characteristic": "characteristic-map", "diagnosis-union": "diagnosis-map (vs union)"}


@dataclass(frozen=True)
class Estimate:
    """A mean with an optional 95 % CI (``low``/``high``)."""

    mean: float
    low: float = math.nan
    high: float = math.nan

    @classmethod
    def of(cls, value: Any) -> Estimate | None:
        """The estimate of a summary cell, or ``None`` when the cell is missing or undefined."""
        if not isinstance(value, dict) or value.get("mean") is None or math.isnan(value["mean"]):
            return None
        return cls(float(value["mean"]), float(value.get("low", math.nan)), float(value.get("high", math.nan)))

    @property
    def has_ci(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]" if self.has_ci else f"{self.mean:.3f}"


def relation(a: Estimate, b: Estimate) -> str:
    """``"above"``, ``"below"`` or ``"not distinguishable"``: where ``a``'s CI lies relative to ``b``'s."""
    a_low, a_high = (a.low, a.high) if a.has_ci else (a.mean, a.mean)
    b_low, b_high = (b.low, b.high) if b.has_ci else (b.mean, b.mean)
    if a_low > b_high:
        return "above"
    if a_high < b_low:
        return "below"
    return "not distinguishable"


def _rows(summary: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {row["source"]: row for row in summary["headline"] if row["type"] == kind}


def _baselines(summary: dict[str, Any], column: str) -> dict[str, Estimate]:
    out = {}
    for source, row in _rows(summary, "baseline").items():
        estimate = Estimate.of(row.get(column))
        if estimate is not None:
            out[source.removeprefix("baseline: ")] = estimate
    return out


def flags(summary: dict[str, Any]) -> dict[tuple[str, str], list[str]]:
    """``(model, column) → baselines the model is not above`` for every flagged headline cell."""
    out: dict[tuple[str, str], list[str]] = {}
    for model, row in _rows(summary, "model").items():
        for column in LOCALIZATION_COLUMNS:
            estimate = Estimate.of(row.get(column))
            if estimate is None:
                continue
            missed = [name for name, base in _baselines(summary, column).items()
                      if relation(estimate, base) != "above"]
            if missed:
                out[(model, column)] = missed
    return out


def gap_closed(model: Estimate, baseline: float, ceiling: float) -> Estimate | None:
    """Share of the gap from ``baseline`` to ``ceiling`` that ``model`` closes (module docstring); ``None``
    when the ceiling is not above the baseline."""
    if not ceiling > baseline:
        return None
    width = ceiling - baseline
    return Estimate((model.mean - baseline) / width, (model.low - baseline) / width, (model.high - baseline) / width)


def _percent(share: Estimate) -> str:
    text = f"{100 * share.mean:.0f} %"
    return text + (f" [{100 * share.low:.0f}, {100 * share.high:.0f} %]" if share.has_ci else "")


def model_sentence(summary: dict[str, Any], model: str) -> str:
    """One model's verdict: its main score against the baselines and the raters, the other localization
    columns where it is not above a baseline (grouped by baseline), and its diagnosis F1."""
    row = _rows(summary, "model")[model]
    raters = _rows(summary, "raters")
    parts: list[str] = []
    main = Estimate.of(row.get(MAIN_COLUMN))
    ceiling_source, name = LOCALIZATION_COLUMNS[MAIN_COLUMN]
    baselines = _baselines(summary, MAIN_COLUMN)
    if main is None:
        parts.append(f"no {name}")
    elif baselines:
        best_name, best = max(baselines.items(), key=lambda item: item[1].mean)
        missed = [b for b, e in baselines.items() if relation(main, e) != "above"]
        if missed:
            head = f"{name} {main} is NOT above the " + ", ".join(
                f"{b} baseline ({baselines[b]}, {relation(main, baselines[b])})" for b in missed)
        else:
            head = f"{name} {main} is above every baseline (best: {best_name}, {best})"
        ceiling = Estimate.of(raters.get(ceiling_source or "", {}).get(MAIN_COLUMN))
        share = gap_closed(main, best.mean, ceiling.mean) if ceiling is not None else None
        if share is not None and ceiling is not None and share.mean > 0:
            head += (f"; it closes {_percent(share)} of the gap from the best baseline ({best.mean:.3f}) "
                     f"to the raters ({ceiling.mean:.3f})")
        parts.append(head)
    others = [f"{LOCALIZATION_COLUMNS[column][1]} ({', '.join(missed)})"
              for (m, column), missed in flags(summary).items() if m == model and column != MAIN_COLUMN]
    if others:
        parts.append("also not above every baseline on " + "; ".join(others))
    dx = Estimate.of(row.get("diagnosis_f1"))
    raters_dx = next((e for e in (Estimate.of(r.get("diagnosis_f1")) for r in raters.values()) if e), None)
    if dx is not None:
        parts.append(f"diagnosis macro F1 {dx}" + (f" (raters {raters_dx.mean:.3f})" if raters_dx else ""))
    return f"{model}: " + ". ".join(p[0].upper() + p[1:] for p in parts) + "."


def paired_sentence(pair: dict[str, Any]) -> str:
    """One paired comparison: which model's maps score higher on the same images (the difference stated
    as better − worse), or that the CI of the difference includes 0."""
    diff = Estimate.of(pair["difference"])
    a, b = pair["a"], pair["b"]
    what = f"{PAIRED_KINDS.get(pair['kind'], pair['kind'])} {pair['score'].replace('dice', 'Dice')}"
    images = f"on the same {pair['difference'].get('n', '?')} images (paired bootstrap)"
    if diff is None or not diff.has_ci:
        return f"{a} vs {b}, {what}: difference undefined."
    if diff.low > 0:
        return f"{a} is better than {b} on {what}: {a} − {b} = {diff} {images}."
    if diff.high < 0:
        flipped = Estimate(-diff.mean, -diff.high, -diff.low)
        return f"{b} is better than {a} on {what}: {b} − {a} = {flipped} {images}."
    return f"{a} and {b} do not differ on {what}: {a} − {b} = {diff} {images}; the CI includes 0."


def verdict(summary: dict[str, Any]) -> list[str]:
    """The verdict sentences: one per model, then one per paired comparison."""
    return ([model_sentence(summary, model) for model in _rows(summary, "model")]
            + [paired_sentence(pair) for pair in summary.get("paired", [])])
