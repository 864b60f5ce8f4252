"""dermx: explainable automated dermatological diagnosis.

The public API is re-exported here and imported lazily (PEP 562), so ``import dermx`` and the
``dermx`` command start without loading PyTorch::

    from dermx import load_dermxdb, rater_agreement, explain, build_model, fit
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("vocab",), "dermx"),
    **dict.fromkeys(("DermXDB", "DermXDBError", "Fold", "ImageRecord", "LoadReport", "Rating", "fuse",
                     "load_dermxdb", "load_rgb", "union"), "dermx.data"),
    **dict.fromkeys(("generate", "load_ground_truth", "watermark_mask"), "dermx.data.synth"),
    **dict.fromkeys(("FuzzyConfusion", "Scores", "bootstrap_ci", "diagnosis_scores", "dice", "energy_pointing",
                     "fuzzy_confusion", "identification_scores", "iou", "paired_bootstrap_ci", "pointing_game",
                     "roc_auc", "sensitivity", "specificity", "summarize"), "dermx.metrics"),
    **dict.fromkeys(("AgreementResult", "localization_agreement", "rater_agreement"), "dermx.evaluate"),
    **dict.fromkeys(("CamEngine", "CamResult", "explain"), "dermx.explain"),
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dermx' has no attribute {name!r}")
    value = importlib.import_module(f"dermx.{name}") if module == "dermx" else getattr(
        importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

