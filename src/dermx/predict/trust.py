"""What a prediction promises: calibrated probabilities, the diagnosis set and the abstention.

With a checkpoint that carries a calibration (:func:`~dermx.models.checkpoint.model_calibration`,
fitted on the validation split in training), an image of group ``g`` (its skin tone, when the user gives
one) gets

- probabilities ``softmax(z / T_g)``: ``T_g`` its group's temperature when the group had one, else the
  overall ``T`` (:meth:`~dermx.trust.fitted.ModelCalibration.temperature_of`);
- the diagnosis set: every class whose conformity score is ≤ the group's threshold (Mondrian), else
  the marginal threshold, in probability order; it holds the true class with probability ≥ 1 − α for
  images exchangeable with the validation images (of the group);
- with a target risk ``R``: ``abstain`` when the top calibrated probability is below the validation
  threshold for ``R`` (:meth:`~dermx.trust.fitted.ModelCalibration.abstention_threshold`); the answer is
  then the set, ``"uncertain: A or B"``, never the top class alone.

A value of the group that calibration did not see (or none given) uses the overall temperature and
the marginal threshold; :attr:`Trust.group_note` says so. Without a calibration: ``calibrated`` false,
no set, and :attr:`Trust.note` says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from dermx.trust.fitted import ModelCalibration


@dataclass(frozen=True)
class Trust:
    """The calibration fields of one prediction (module docstring); :meth:`to_dict` is their JSON form."""

    calibrated: bool
    note: str = ""
    temperature: float | None = None
    group: str | None = None
    group_key: str | None = None
    group_note: str = ""
    diagnosis_set: tuple[str, ...] = ()
    set_coverage: float | None = None
    set_threshold: float | None = None
    abstain_risk: float | None = None
    abstain_threshold: float | None = None
    abstain: bool = False

    @property
    def reason(self) -> str | None:
        """``"uncertain: A or B"`` (the set's classes) when the prediction abstains."""
        if not self.abstain:
            return None
        names = list(self.diagnosis_set)
        shown = names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" or {names[-1]}" if names else "no class"
        return f"uncertain: {shown}"

    def to_dict(self) -> dict[str, Any]:
        """``calibrated`` and, without a calibration, ``calibration_note``; with one, the temperature, the
        group used, the set, its coverage and threshold (``"inf"``: every class), and the abstention."""
        if not self.calibrated:
            return {"calibrated": False, "calibration_note": self.note}
        return {"calibrated": True, "temperature": self.temperature, "skin_tone": self.group,
                "group_key": self.group_key, "group_note": self.group_note,
                "diagnosis_set": list(self.diagnosis_set), "set_coverage": self.set_coverage,
                "set_threshold": _number(self.set_threshold), "abstain_risk": self.abstain_risk,
                "abstain_threshold": _number(self.abstain_threshold), "abstain": self.abstain,
                "reason": self.reason}


def _number(value: float | None) -> float | str | None:
    return "inf" if value is not None and math.isinf(value) else value


def group_note(calibration: ModelCalibration, group: str | None) -> str:
    """How the temperature and set threshold of an image of ``group`` were chosen, in words."""
    key = calibration.group_key or "group"
    if group is None:
        return f"{key} not given: overall temperature and marginal set threshold"
    if group not in calibration.group_thresholds:
        seen = ", ".join(sorted(calibration.group_thresholds)) or "none"
        return (f"{key} {group!r} was not among the calibrated groups ({seen}): overall temperature and marginal "
                "set threshold")
    own = "its own temperature" if group in calibration.group_temperatures else "the overall temperature"
    return f"{key} {group!r}: {own} and its own set threshold"


def answers(calibration: ModelCalibration, logits: torch.Tensor, classes: tuple[str, ...],
            groups: list[str | None], risks: list[float | None]) -> tuple[torch.Tensor, list[Trust]]:
    """Calibrated ``(n, K)`` probabilities of diagnosis ``logits`` and each row's :class:`Trust`, for rows
    of ``groups`` (``None``: not given) with target risks ``risks`` (``None``: no abstention asked)."""
    probabilities = calibration.probabilities(logits.detach().cpu(), groups)
    sets = calibration.sets(probabilities, groups)
    out = []
    for row, (group, risk) in enumerate(zip(groups, risks, strict=True)):
        order = torch.argsort(probabilities[row], descending=True, stable=True).tolist()
        members = tuple(classes[k] for k in order if sets[row, k])
        limit = calibration.abstention_threshold(risk) if risk is not None else None
        out.append(Trust(True, temperature=calibration.temperature_of(group), group=group,
                         group_key=calibration.group_key, group_note=group_note(calibration, group),
                         diagnosis_set=members, set_coverage=1 - calibration.alpha,
                         set_threshold=calibration.threshold_of(group), abstain_risk=risk, abstain_threshold=limit,
                         abstain=limit is not None and float(probabilities[row, order[0]]) < limit))
    return probabilities, out
