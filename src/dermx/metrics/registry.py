"""What each map metric measures: its range, its direction and the function that computes it.

Every registered ``fn`` has the same call ``fn(prediction_or_saliency, reference) -> Scores``, so
evaluation code can loop over metrics by name. (The classification scores of
:mod:`dermx.metrics.classification` are in [0, 1] except Cohen's kappa, in [−1, 1]; all are higher
is better.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from torch import Tensor

from dermx.metrics import fuzzy, localization
from dermx.metrics.scores import Scores


@dataclass(frozen=True)
class MetricInfo:
    """A map metric's name, value range ``(low, high)``, direction and function."""

    name: str
    range: tuple[float, float]
    higher_is_better: bool
    fn: Callable[[Tensor, Tensor], Scores]


METRICS: Mapping[str, MetricInfo] = MappingProxyType(
    {
        info.name: info
        for info in (
            MetricInfo("sensitivity", (0.0, 1.0), True, fuzzy.sensitivity),
            MetricInfo("specificity", (0.0, 1.0), True, fuzzy.specificity),
            MetricInfo("precision", (0.0, 1.0), True, fuzzy.precision),
            MetricInfo("npv", (0.0, 1.0), True, fuzzy.npv),
            MetricInfo("iou", (0.0, 1.0), True, fuzzy.iou),
            MetricInfo("dice", (0.0, 1.0), True, fuzzy.dice),
            MetricInfo("pointing_game", (0.0, 1.0), True, localization.pointing_game),
            MetricInfo("energy_pointing", (0.0, 1.0), True, localization.energy_pointing),
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
