"""Metrics: fuzzy confusion scores, localization scores, classification scores and aggregates.

- :mod:`~dermx.metrics.fuzzy`: fuzzy TP/FP/FN/TN and sensitivity, specificity, precision, NPV,
  IoU, Dice of membership maps (min or product t-norm).
- :mod:`~dermx.metrics.localization`: pointing game (and its fuzzy variant), energy-based pointing and
  weighted ROC AUC of saliency maps against fuzzy references.
- :mod:`~dermx.metrics.classification`: per-class and macro precision, recall, F1, Cohen's kappa
  and confusion matrices, labels by name.
- :mod:`~dermx.metrics.aggregate`: NaN-aware summaries and (paired) bootstrap intervals.
- :mod:`~dermx.metrics.registry`: each map metric's name, range and direction; several computed at once.

Map metrics return :class:`Scores`: values with NaN where undefined (zero denominator) and the
count of undefined items.
"""

from dermx._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(("BootstrapCI", "Summary", "bootstrap_ci", "paired_bootstrap_ci", "pearson",
                         "percentile_interval", "resample_blocks", "resample_counts", "resampled", "summarize",
                         "wilson_interval"), ".aggregate"),
        **dict.fromkeys(
            ("DiagnosisScores", "LabelScores", "confusion_matrix", "diagnosis_scores", "identification_scores"),
            ".classification",
        ),
        **dict.fromkeys(
            (
                "FuzzyConfusion",
                "TNorm",
                "dice",
                "fuzzy_confusion",
                "iou",
                "npv",
                "precision",
                "sensitivity",
                "specificity",
            ),
            ".fuzzy",
        ),
        **dict.fromkeys(("energy_pointing", "fuzzy_pointing_game", "pointing_game", "roc_auc"), ".localization"),
        **dict.fromkeys(("METRICS", "MetricInfo", "compute_metrics", "metric_info"), ".registry"),
        **dict.fromkeys(("Scores",), ".scores"),
    },
)
