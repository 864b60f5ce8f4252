"""Trust in a classifier's answers, overall and per group (skin tone, age group, any stratum).

- :mod:`~dermx.trust.calibration`: temperature scaling (one temperature, or one per group), ECE with
  equal-width and equal-mass bins, class-wise ECE, Brier score, NLL, reliability bins.
- :mod:`~dermx.trust.conformal`: split conformal diagnosis sets (LAC, APS) at error rate α, marginal
  and per group (Mondrian), with their coverage and size.
- :mod:`~dermx.trust.selective`: risk–coverage curves, AURC and the confidence threshold of an
  abstention rule for a target risk.
- :mod:`~dermx.trust.fitted`: the calibration a model carries (temperature, set thresholds, risk curve),
  fitted on its validation split.
- :mod:`~dermx.trust.uncertainty`: intervals: patient bootstrap for means and whole-sample statistics,
  Wilson for proportions.

All functions take logits or probabilities as arrays (torch or NumPy) and compute in float64 on the CPU.
"""

from dermx._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(("Reliability", "TemperatureFit", "TemperatureScaling", "brier", "calibration_report",
                         "classwise_ece", "ece", "fit_temperature", "fit_temperature_scaling", "nll", "reliability",
                         "reliability_bins", "scaled_probs"), ".calibration"),
        **dict.fromkeys(("ConformalCalibration", "CoverageReport", "SetQuality", "Threshold", "calibrate_sets",
                         "conformal_quantile", "conformity_scores", "coverage_report", "label_scores",
                         "prediction_sets", "random_uniforms"), ".conformal"),
        **dict.fromkeys(("AbstentionRule", "RiskCoverage", "SelectiveQuality", "aurc", "aurc_interval",
                         "clopper_pearson_upper", "risk_coverage", "selective_report", "threshold_for_risk"),
                        ".selective"),
        **dict.fromkeys(("Interval", "mean_interval", "proportion", "statistic_interval", "weighted_interval"),
                        ".uncertainty"),
        **dict.fromkeys(("MIN_GROUP", "ModelCalibration", "fit_model_calibration"), ".fitted"),
    },
)
