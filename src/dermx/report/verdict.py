"""The report's verdict: what the run's paired tests and intervals say, as sentences computed from them.

Rules (stated in the report beside the verdict):

- a model's score is *above* a baseline when the paired bootstrap CI of model − baseline, on the
  model's own pairs, lies above 0; *below* when it lies below 0; else *not distinguishable*
  (``summary["versus_baselines"]``). The CIs of the three baselines of a column are Bonferroni-adjusted
  (each at 1 − 0.05/3), so "above every baseline" holds at 95 % for the three together. Columns are
  separate questions and are not adjusted across.
- a model whose score is not above every baseline on a tested column is *flagged* there.
- the share of the gap closed is ``(model − best baseline) / (ceiling − best baseline)`` with the
  raters scored exactly as the model (leave one rater out, on the model's pairs), or for the maps
  against the drawn lesions the experts' fused map; its CI draws the three jointly
  (``summary["gap_closed"]``).
- two models differ when the paired bootstrap CI of their difference (same images and pairs)
  excludes 0.
- a group of images (a skin tone, or a value of the attribute of a ``--groups`` file) is named when the CI
  of its gap to the rest of the model's images, ``θ(group) − θ(rest)`` with the patients of all of them
  resampled together, excludes 0, for the diagnosis (accuracy, macro F1) and the explanations (map Dice,
  pointing, and with a leaderboard the deletion AUC of the run's CAM method on its first test images)
  alike (``summary["groups"]``); the gaps of one score of one model are Bonferroni-adjusted over its
  groups.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: Headline columns on which a model is tested against the baselines (``summary["versus_baselines"]``), with
#: the plain name used in sentences.
LOCALIZATION_COLUMNS: dict[str, str] = {
    "char_dice": "characteristic-map Dice against the raters",
    "union_dice": "diagnosis-map Dice against the raters' union",
    "pointing": "pointing game",
    "char_dice_drawn": "characteristic-map Dice against the drawn lesions",
    "pointing_drawn": "pointing game against the drawn lesions",
}
#: The column the first sentence of each model is about (the benchmark's main localization score).
MAIN_COLUMN = "char_dice"
#: Plain names of the paired comparisons' map kinds.
PAIRED_KINDS: dict[str, str] = {"characteristic": "characteristic-map", "diagnosis-union": "diagnosis-map (vs union)"}
RULES = ("Above / below: the paired bootstrap CI of model − baseline on the model's own pairs lies above / below "
         "0 (patients resampled; the three baselines of a column Bonferroni-adjusted, each CI at 98.3 %, so that "
         "\"above every baseline\" holds at 95 % jointly); otherwise \"not distinguishable\". Gap closed: (model − "
         "best baseline) / (ceiling − best baseline), the ceiling being the raters scored exactly as the model "
         "(each rater against the others, on the model's pairs), its CI drawing the three together. Cells marked "
         "⚠ in the table are not above every baseline.")

#: Each group score's sentence: (what is compared, word when the group is lower, word when higher, name; the
#: name of the deletion AUC is formatted with the CAM method of ``summary["groups"]["deletion_auc"]``).
GAP_WORDS: dict[str, tuple[str, str, str, str]] = {
    "accuracy": ("diagnoses are", "less accurate", "more accurate", "accuracy"),
    "macro_f1": ("diagnoses are", "less accurate by class", "more accurate by class", "macro F1"),
    "dice": ("maps agree", "less with the experts", "more with the experts", "Dice"),
    "pointing": ("maps point", "less often at what the experts outlined", "more often at what the experts outlined",
                 "pointing game"),
    "deletion_auc": ("maps are", "more faithful to the model (deleting what they highlight lowers its score faster)",
                     "less faithful to the model (deleting what they highlight lowers its score more slowly)",
                     "{method} deletion AUC"),
}
#: The attribute whose values are called by its own name (``skin tone dark``); another attribute's values are
#: its groups (``fitzpatrick group V``).
NAMED_VALUES = "skin_tone"


def grouped_by(summary: dict[str, Any]) -> str:
    """The attribute the run's groups are values of (:data:`NAMED_VALUES` for a run from before groups)."""
    return str((summary.get("groups") or {}).get("by", NAMED_VALUES))


def group_words(by: str) -> tuple[str, str]:
    """How the report names the attribute ``by`` and one of its groups: ``("skin tone", "skin tone")``,
    ``("fitzpatrick", "fitzpatrick group")``."""
    attribute = by.replace("_", " ")
    return attribute, attribute if by == NAMED_VALUES else f"{attribute} group"


def gap_rule(by: str) -> str:
    """The rule of the group sentences (:func:`group_gaps`) for groups of the attribute ``by``."""
    _, group = group_words(by)
    return (f"Groups: a {group} is named when the CI of its gap to the rest of the model's test images (group − "
            "rest, the patients of all of them resampled together) excludes 0; the gaps of one score of one model "
            f"are Bonferroni-adjusted over its {group}s (deletion AUC: over those among the leaderboard's images).")


def _fixed(value: float, sign: str = "") -> str:
    """``value`` to three decimals (``sign="+"``: always signed); rounded first so that a tiny negative value
    reads ``0.000`` / ``+0.000``, never ``-0.000``."""
    return f"{round(value, 3) + 0.0:{sign}.3f}"


@dataclass(frozen=True)
class Estimate:
    """A mean with an optional CI (``low``/``high``)."""

    mean: float
    low: float = math.nan
    high: float = math.nan

    @classmethod
    def of(cls, value: Any) -> Estimate | None:
        """The estimate of a summary cell, or ``None`` when the cell is missing or undefined."""
        if not isinstance(value, dict) or value.get("mean") is None or math.isnan(value["mean"]):
            return None
        low, high = value.get("low"), value.get("high")
        return cls(float(value["mean"]), math.nan if low is None else float(low),
                   math.nan if high is None else float(high))

    @property
    def has_ci(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    def signed(self) -> str:
        """``+0.012 [-0.003, +0.025]``; a value that rounds to zero is ``+0.000``, never ``-0.000``."""
        return self._text("+")

    def __str__(self) -> str:
        return self._text()

    def _text(self, sign: str = "") -> str:
        mean, low, high = (_fixed(v, sign) for v in (self.mean, self.low, self.high))
        return f"{mean} [{low}, {high}]" if self.has_ci else mean


def relation(difference: Estimate | None) -> str:
    """``"above"``, ``"below"`` or ``"not distinguishable"``: where the CI of a paired difference lies."""
    if difference is None or not difference.has_ci:
        return "not distinguishable"
    if difference.low > 0:
        return "above"
    if difference.high < 0:
        return "below"
    return "not distinguishable"


def _rows(summary: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {row["source"]: row for row in summary["headline"] if row["type"] == kind}


def versus(summary: dict[str, Any], model: str, column: str) -> dict[str, Estimate | None]:
    """Each baseline's paired difference model − baseline on a column (empty when it was not tested)."""
    return {name: Estimate.of(e) for name, e in summary.get("versus_baselines", {}).get(model, {})
            .get(column, {}).items()}


def flags(summary: dict[str, Any]) -> dict[tuple[str, str], list[str]]:
    """``(model, column) → baselines the model is not above`` for every flagged headline cell."""
    out: dict[tuple[str, str], list[str]] = {}
    for model in _rows(summary, "model"):
        for column in LOCALIZATION_COLUMNS:
            missed = [name for name, difference in versus(summary, model, column).items()
                      if relation(difference) != "above"]
            if missed:
                out[(model, column)] = missed
    return out


def _percent(share: Estimate) -> str:
    text = f"{100 * share.mean:.0f} %"
    return text + (f" [{100 * share.low:.0f}, {100 * share.high:.0f} %]" if share.has_ci else "")


def model_sentence(summary: dict[str, Any], model: str) -> str:
    """One model's verdict: its main score against the baselines (paired) and the raters, the other
    tested columns where it is not above a baseline, its miss rate and its diagnosis F1."""
    row = _rows(summary, "model")[model]
    parts: list[str] = []
    main, name = Estimate.of(row.get(MAIN_COLUMN)), LOCALIZATION_COLUMNS[MAIN_COLUMN]
    differences = versus(summary, model, MAIN_COLUMN)
    if main is None:
        parts.append(f"no {name}")
    elif differences:
        missed = [b for b, d in differences.items() if relation(d) != "above"]
        if missed:
            head = f"{name} {main} is NOT above the " + ", ".join(
                f"{b} baseline (paired difference {d.signed() if d else 'undefined'}, {relation(d)})"
                for b, d in differences.items() if b in missed)
        else:
            closest = min(differences, key=lambda b: differences[b].mean)  # type: ignore[union-attr]
            head = (f"{name} {main} is above every baseline (paired; closest: {closest}, "
                    f"{differences[closest].signed()})")  # type: ignore[union-attr]
        gap = summary.get("gap_closed", {}).get(model, {}).get(MAIN_COLUMN)
        share = Estimate.of(gap)
        if share is not None and gap is not None:
            head += (f"; it closes {_percent(share)} of the gap from the best baseline ({gap['baseline_name']}, "
                     f"{gap['baseline']:.3f}) to the raters scored as the model ({gap['ceiling']:.3f})")
        parts.append(head)
    others = [f"{LOCALIZATION_COLUMNS[column]} ({', '.join(missed)})"
              for (m, column), missed in flags(summary).items() if m == model and column != MAIN_COLUMN]
    if others:
        parts.append("also not above every baseline on " + "; ".join(others))
    miss = Estimate.of(row.get("miss_rate"))
    if miss is not None:
        parts.append(f"it calls absent {_percent(miss)} of the characteristics the raters outlined (each scored 0)")
    dx = Estimate.of(row.get("diagnosis_f1"))
    raters = _rows(summary, "raters")
    raters_dx = next((e for e in (Estimate.of(r.get("diagnosis_f1")) for r in raters.values()) if e), None)
    if dx is not None:
        parts.append(f"diagnosis macro F1 {dx}" + (f" (raters {raters_dx})" if raters_dx else ""))
    return f"{model}: " + ". ".join(p[0].upper() + p[1:] for p in parts) + "."


def paired_sentence(pair: dict[str, Any]) -> str:
    """One paired comparison: which model's maps score higher on the same images, or that the CI of the
    difference includes 0; the difference is always A − B, as in the paired table."""
    diff = Estimate.of(pair["difference"])
    a, b = pair["a"], pair["b"]
    what = f"{PAIRED_KINDS.get(pair['kind'], pair['kind'])} {pair['score'].replace('dice', 'Dice')}"
    images = f"on the same {pair['difference'].get('n', '?')} images (paired bootstrap)"
    if diff is None or not diff.has_ci:
        return f"{a} vs {b}, {what}: difference undefined."
    if diff.low > 0:
        return f"{a} is better than {b} on {what}: {a} − {b} = {diff.signed()} {images}."
    if diff.high < 0:
        return f"{b} is better than {a} on {what}: {a} − {b} = {diff.signed()} {images}."
    if diff.mean == diff.low == diff.high == 0:  # e.g. a bottleneck made from the other's network: its maps
        return (f"{a} and {b} score the same on {what}: {a} − {b} = 0 in every resample {images}, as models "
                "sharing one network for these maps do.")
    return f"{a} and {b} do not differ on {what}: {a} − {b} = {diff.signed()} {images}; the CI includes 0."


def group_gaps(summary: dict[str, Any]) -> list[str]:
    """One sentence per (model, group, score) whose gap's CI excludes 0 (``summary["groups"]``; none for a
    run from before groups), e.g. "DermX+: maps agree less with the experts on skin tone dark: Dice
    −0.050 [−0.090, −0.010] vs the rest (40 of 188 images; CI at 98.3 %)": the images the gap was computed
    on (the deletion AUC's: the leaderboard's)."""
    block = summary.get("groups") or {}
    by = str(block.get("by", "group")).replace("_", " ")
    method = (block.get("deletion_auc") or {}).get("method", "")
    out = []
    for model, entry in block.get("models", {}).items():
        total = sum(g["images"] for g in entry["groups"].values())
        for name, group in entry["groups"].items():
            for score, (subject, lower, higher, label) in GAP_WORDS.items():
                cell = group.get("gap", {}).get(score)
                gap = Estimate.of(cell)
                if cell is None or gap is None or relation(gap) == "not distinguishable":
                    continue
                word = lower if gap.high < 0 else higher
                out.append(f"{model}: {subject} {word} on {by} {name}: {label.format(method=method)} {gap.signed()} "
                           f"vs the rest ({cell.get('n_group', group['images'])} of {cell.get('n', total)} images; "
                           f"CI at {100 * cell.get('level', 0.95):.1f} %).")
    return out


def verdict(summary: dict[str, Any]) -> list[str]:
    """The verdict sentences: one per model, one per paired comparison, then one per group gap."""
    return ([model_sentence(summary, model) for model in _rows(summary, "model")]
            + [paired_sentence(pair) for pair in summary.get("paired", [])] + group_gaps(summary))
