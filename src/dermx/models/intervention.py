r"""Test-time intervention on a model's characteristics: a clinician says "Scale: present" and the model
recomputes its diagnosis (Koh et al., ICML 2020, "Concept bottleneck models").

**The rule.** Setting characteristic ``j`` *present* replaces its logit ``z_j`` by ``q95_j``, the 95th
percentile of ``z_j`` over the training images; *absent* by ``q5_j``, the 5th percentile (Koh et al.'s
choice: values the model itself gives to images it is sure about, so the heads see nothing out of their
training range). Every layer that reads ``z_char`` then sees the set value: the diagnosis head of DermX
and DermX+ (``Linear([h, z_char])``), the bottleneck head of ``cbm`` models (``Linear(z_char)``), and the
gradients of the CAM engine (the set column is a constant: it has no map).

The percentiles are computed once, at the end of training, on the training images without augmentation
(:func:`fit_intervention_rule`), and stored in the checkpoint (``ModelConfig.interventions``,
:meth:`InterventionRule.to_dict`). A ``dx-only`` model has no characteristics to set; a checkpoint without
the record (written before, or a timm classifier) cannot intervene: both are errors that say so.

:func:`intervened` applies a setting as a context-managed forward hook on the characteristic head::

    values = rule.values({"Scale": True, "Pustule": False})   # {index: logit}
    with intervened(model, values):
        outputs = model(images)          # diagnosis computed from the set characteristics
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["PERCENTILES", "InterventionError", "InterventionRule", "fit_intervention_rule", "intervened",
           "parse_setting"]

#: The training-logit percentiles a characteristic set absent / present takes.
PERCENTILES = (5.0, 95.0)
#: Words accepted for a setting's value (CLI ``--set Scale=present``, the service's form).
WORDS = {"present": True, "absent": False}


class InterventionError(ValueError):
    """An intervention the model cannot take: unknown characteristic or value, no characteristics, or a
    checkpoint without an intervention rule."""


@dataclass(frozen=True)
class InterventionRule:
    """Per characteristic (``characteristics``, the model's order), the logit it takes when set
    ``absent`` and ``present``: the ``percentiles`` of its logits over ``n`` training images; ``mean``: their
    mean there (what a characteristic is replaced by to ask how much the diagnosis relies on it; ``None``
    in records written before it was kept)."""

    characteristics: tuple[str, ...]
    absent: tuple[float, ...]
    present: tuple[float, ...]
    n: int
    percentiles: tuple[float, float] = PERCENTILES
    mean: tuple[float, ...] | None = None

    def values(self, settings: Mapping[str, bool]) -> dict[int, float]:
        """``{column: logit}`` for ``settings`` (characteristic name -> present); an unknown name is an
        :class:`InterventionError` listing the model's characteristics."""
        unknown = sorted(set(settings) - set(self.characteristics))
        if unknown:
            raise InterventionError(f"unknown characteristic(s) {unknown}; this model's characteristics: "
                                    f"{', '.join(self.characteristics)}")
        out = {}
        for name, present in settings.items():
            if not isinstance(present, bool):
                raise InterventionError(f"{name}: set it to present (True) or absent (False), got {present!r}")
            j = self.characteristics.index(name)
            out[j] = self.present[j] if present else self.absent[j]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"rule": "training-logit percentiles", "characteristics": list(self.characteristics),
                "absent": list(self.absent), "present": list(self.present), "n": self.n,
                "percentiles": list(self.percentiles), "mean": None if self.mean is None else list(self.mean)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InterventionRule:
        """The inverse of :meth:`to_dict`; a malformed record is an :class:`InterventionError` naming the key."""
        try:
            mean = data.get("mean")
            rule = cls(tuple(data["characteristics"]), tuple(float(v) for v in data["absent"]),
                       tuple(float(v) for v in data["present"]), int(data["n"]),
                       (float(data["percentiles"][0]), float(data["percentiles"][1])),
                       None if mean is None else tuple(float(v) for v in mean))
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise InterventionError(f"malformed intervention record ({error!r}): {dict(data)}") from error
        if not len(rule.characteristics) == len(rule.absent) == len(rule.present) == len(
                rule.mean if rule.mean is not None else rule.absent):
            raise InterventionError(f"intervention record: {len(rule.characteristics)} characteristics, "
                                    f"{len(rule.absent)} absent and {len(rule.present)} present values")
        return rule


def fit_intervention_rule(logits: torch.Tensor, characteristics: Sequence[str],
                          percentiles: tuple[float, float] = PERCENTILES) -> InterventionRule:
    """The rule from ``(n, C)`` characteristic logits of the training images (module docstring):
    ``torch.quantile`` (linear interpolation) of each column at ``percentiles``, and each column's mean."""
    if logits.ndim != 2 or logits.shape[1] != len(characteristics):
        raise ValueError(f"logits of shape {tuple(logits.shape)} for {len(characteristics)} characteristics")
    if logits.shape[0] == 0:
        raise ValueError("no training logits to take percentiles of")
    low, high = (p / 100.0 for p in percentiles)
    q = torch.quantile(logits.double(), torch.tensor([low, high], dtype=torch.float64), dim=0)
    return InterventionRule(tuple(characteristics), tuple(q[0].tolist()), tuple(q[1].tolist()),
                            int(logits.shape[0]), percentiles, tuple(logits.double().mean(dim=0).tolist()))


def parse_setting(text: str) -> tuple[str, bool]:
    """``"Scale=present"`` -> ``("Scale", True)``; anything else is an :class:`InterventionError`."""
    name, sep, word = text.partition("=")
    if not sep or not name.strip() or word.strip().lower() not in WORDS:
        raise InterventionError(f"cannot read {text!r}: write NAME=present or NAME=absent")
    return name.strip(), WORDS[word.strip().lower()]


@contextmanager
def intervened(model: nn.Module, values: Mapping[int, float] | torch.Tensor) -> Iterator[None]:
    """Within the block, ``model``'s characteristic logits are replaced (a forward hook on
    ``model.characteristic_head``): in the columns of a mapping ``values`` by its values, the same for
    every image; or, per image, by a ``(B, C)`` tensor of logits, NaN where the model's own value stays
    (each image its own setting). Nothing is hooked for an empty mapping."""
    head = getattr(model, "characteristic_head", None)
    if head is None:
        raise InterventionError("this model has no characteristics (a dx-only model): nothing to set")
    if isinstance(values, torch.Tensor):
        table = values

        def replace(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
            if table.shape != output.shape:
                raise InterventionError(f"per-image logits of shape {tuple(table.shape)} for characteristic "
                                        f"outputs of shape {tuple(output.shape)}")
            given = table.to(output.device, output.dtype)
            return torch.where(torch.isnan(given), output, given)
    elif not values:
        yield
        return
    else:
        columns = torch.tensor(sorted(values), dtype=torch.long)
        fixed = torch.tensor([values[j] for j in sorted(values)], dtype=torch.float64)

        def replace(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
            out = output.clone()
            out[:, columns.to(out.device)] = fixed.to(out.device, out.dtype)
            return out

    handle = head.register_forward_hook(replace)
    try:
        yield
    finally:
        handle.remove()
