"""Metrics: fuzzy confusion scores, localization scores, classification scores and aggregates.

- :mod:`~dermx.metrics.fuzzy`: fuzzy TP/FP/FN/TN and sensitivity, specificity, precision, NPV,
  IoU, Dice of membership maps (min or product t-norm).
- :mod:`~dermx.metrics.localization`: pointing game, energy-based pointing and weighted ROC AUC of
  saliency maps against fuzzy references.
- :mod:`~dermx.metrics.classification`: per-class and macro precision, recall, F1, Cohen's kappa
  and confusion matrices, labels by name.
- :mod:`~dermx.metrics.aggregate`: NaN-aware summaries and (paired) bootstrap intervals.
- :mod:`~dermx.metrics.registry`: each map metric's range and direction.

Map metrics return :class:`Scores`: values with NaN where undefined (zero denominator) and the
count of undefined items.
"""

from dermx.metrics.aggregate import BootstrapCI, Summary, bootstrap_ci, paired_bootstrap_ci, summarize
from dermx.metrics.classification import (
    DiagnosisScores,
    LabelScores,
    confusion_matrix,
    diagnosis_scores,
    identification_scores,
)
from dermx.metrics.fuzzy import (
    FuzzyConfusion,
    TNorm,
    dice,
    fuzzy_confusion,
    iou,
    npv,
    precision,
    sensitivity,
    specificity,
)
from dermx.metrics.localization import energy_pointing, pointing_game, roc_auc
from dermx.metrics.registry import METRICS, MetricInfo, metric_info
from dermx.metrics.scores import Scores

__all__ = [
    "METRICS",
    "BootstrapCI",
    "DiagnosisScores",
    "FuzzyConfusion",
    "LabelScores",
    "MetricInfo",
    "Scores",
    "Summary",
    "TNorm",
    "bootstrap_ci",
    "confusion_matrix",
    "diagnosis_scores",
    "dice",
    "energy_pointing",
    "fuzzy_confusion",
    "identification_scores",
    "iou",
    "metric_info",
    "npv",
    "paired_bootstrap_ci",
    "pointing_game",
    "precision",
    "roc_auc",
    "sensitivity",
    "specificity",
    "summarize",
]
