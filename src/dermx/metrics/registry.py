"""The map metrics by name: range, direction and the function that computes each.

A metric's registry name is also its column name in every score table (``items.csv``,
``summary.json``). Every registered ``fn`` has the call ``fn(prediction_or_saliency, reference) ->
Scores`` (plus the keyword ``options`` it declares), so evaluation code can loop over metrics by name;
:func:`compute_metrics` computes several at once, the fuzzy ones from one shared
:func:`~dermx.metrics.fuzzy_confusion` (min t-norm). (The classification scores of
:mod:`dermx.metrics.classification` are in [0, 1] except Cohen's kappa, in [−1, 1]; all are higher
is better.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from torch import Tensor

from dermx.metrics import fuzzy, localization
from dermx.metrics.fuzzy import FuzzyConfusion, fuzzy_confusion
from dermx.metrics.scores import Scores


@dataclass(frozen=True)
class MetricInfo:
    """A map metric's name, value range ``(low, high)``, direction and function; ``worst`` is the end of
    the range a map earns when it shows nothing where something is (the benchmark's rule for misses).

    ``of_confusion`` reads a fuzzy score off a :class:`~dermx.metrics.FuzzyConfusion` (``None`` for the
    saliency scores); ``options`` names the keyword options ``fn`` takes (the pointing tolerance).
    """

    name: str
    range: tuple[float, float]
    higher_is_better: bool
    fn: Callable[..., Scores]
    of_confusion: Callable[[FuzzyConfusion], Scores] | None = None
    options: tuple[str, ...] = ()

    @property
    def worst(self) -> float:
        return self.range[0] if self.higher_is_better else self.range[1]


METRICS: Mapping[str, MetricInfo] = MappingProxyType(
    {
        info.name: info
        for info in (
            MetricInfo("sensitivity", (0.0, 1.0), True, fuzzy.sensitivity, FuzzyConfusion.sensitivity),
            MetricInfo("specificity", (0.0, 1.0), True, fuzzy.specificity, FuzzyConfusion.specificity),
            MetricInfo("precision", (0.0, 1.0), True, fuzzy.precision, FuzzyConfusion.precision),
            MetricInfo("npv", (0.0, 1.0), True, fuzzy.npv, FuzzyConfusion.npv),
            MetricInfo("iou", (0.0, 1.0), True, fuzzy.iou, FuzzyConfusion.iou),
            MetricInfo("dice", (0.0, 1.0), True, fuzzy.dice, FuzzyConfusion.dice),
            MetricInfo("pointing", (0.0, 1.0), True, localization.pointing_game, options=("tolerance",)),
            MetricInfo("fuzzy_pointing", (0.0, 1.0), True, localization.fuzzy_pointing_game, options=("tolerance",)),
            MetricInfo("energy", (0.0, 1.0), True, localization.energy_pointing),
            MetricInfo("roc_auc", (0.0, 1.0), True, localization.roc_auc),
        )
    }
)
"""The map metrics by name (read-only). Fuzzy scores use the default min t-norm here."""


def metric_info(name: str) -> MetricInfo:
    """Look a metric up by name; ``ValueError`` listing the known names if it is unknown."""
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; known: {sorted(METRICS)}") from None


def compute_metrics(names: Sequence[str], prediction: Tensor, reference: Tensor,
                    **options: Any) -> dict[str, Scores]:
    """The named metrics of ``prediction`` against ``reference``, in the order of ``names``.

    The fuzzy scores share one :func:`~dermx.metrics.fuzzy_confusion`; each option goes to the metrics
    that declare it (``ValueError`` for an option none of them takes). An option may also be a mapping
    ``{metric name: value}``, to give metrics that share an option their own values (the pointing game
    at 15 px, its fuzzy variant at 0).
    """
    infos = [metric_info(name) for name in names]
    unused = set(options) - {o for info in infos for o in info.options}
    if unused:
        raise ValueError(f"option(s) {sorted(unused)} taken by none of the metrics {list(names)}")
    confusion = fuzzy_confusion(prediction, reference) if any(i.of_confusion for i in infos) else None
    out: dict[str, Scores] = {}
    for info in infos:
        if info.of_confusion is not None and confusion is not None:
            out[info.name] = info.of_confusion(confusion)
        else:
            own = {k: v.get(info.name, 0.0) if isinstance(v, Mapping) else v for k, v in options.items()
                   if k in info.options}
            out[info.name] = info.fn(prediction, reference, **own)
    return out
