"""dermx: explainable automated dermatological diagnosis.

The public API is re-exported here and imported lazily (PEP 562), so ``import dermx`` and the
``dermx`` command start without loading PyTorch::

    from dermx import load_dermxdb, rater_agreement, CamEngine, build_model, fit
"""

from __future__ import annotations

from dermx._lazy import lazy_exports
from dermx.version import __version__

#: public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "vocab": "dermx.vocab",
    **dict.fromkeys(
        (
            "DermXDB",
            "DermXDBError",
            "Fold",
            "ImageRecord",
            "LoadReport",
            "Rating",
            "fuse",
            "load_dermxdb",
            "load_rgb",
            "union",
        ),
        "dermx.data",
    ),
    **dict.fromkeys(("generate", "load_ground_truth", "watermark_mask"), "dermx.data.synth"),
    **dict.fromkeys(
        (
            "FuzzyConfusion",
            "Scores",
            "bootstrap_ci",
            "diagnosis_scores",
            "dice",
            "energy_pointing",
            "fuzzy_confusion",
            "identification_scores",
            "iou",
            "paired_bootstrap_ci",
            "pointing_game",
            "roc_auc",
            "sensitivity",
            "specificity",
            "summarize",
        ),
        "dermx.metrics",
    ),
    **dict.fromkeys(
        (
            "aurc",
            "brier",
            "calibrate_sets",
            "calibration_report",
            "classwise_ece",
            "coverage_report",
            "ece",
            "fit_temperature_scaling",
            "nll",
            "risk_coverage",
            "selective_report",
            "threshold_for_risk",
        ),
        "dermx.trust",
    ),
    **dict.fromkeys(
        ("AgreementResult", "BenchmarkConfig", "localization_agreement", "rater_agreement", "run_benchmark"),
        "dermx.evaluate",
    ),
    **dict.fromkeys(("CamEngine", "CamResult"), "dermx.explain"),
    **dict.fromkeys(("DermXNet", "ModelConfig", "build_model", "load_checkpoint", "save_checkpoint"), "dermx.models"),
    **dict.fromkeys(("TrainConfig", "fit", "run_cv"), "dermx.train"),
    **dict.fromkeys(("Prediction", "Predictor"), "dermx.predict"),
    **dict.fromkeys(("create_app",), "dermx.serve"),
    **dict.fromkeys(("render_report",), "dermx.report"),
    **dict.fromkeys(("DemoConfig", "run_demo"), "dermx.demo"),
}

_names, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["__version__", *_names]
