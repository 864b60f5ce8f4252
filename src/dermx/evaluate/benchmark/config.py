"""The choices and the tables of a benchmark run: :class:`BenchmarkConfig` and :class:`BenchmarkResult`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dermx.choices import CamMethod, EvalMapSize, FusionRule, Selection
from dermx.evaluate.benchmark.scoring import BASELINES, POINTING_TOLERANCE
from dermx.evaluate.image_groups import ImageGroups
from dermx.trust.fitted import ModelCalibration


@dataclass(frozen=True)
class BenchmarkConfig:
    """Choices of a benchmark run (all stored in ``summary.json``).

    ``method`` (the CAM method) and ``threshold`` (a characteristic is present when p ≥ threshold) are
    the one source for both the models' explainers (:func:`~dermx.evaluate.candidates.load_candidates`
    is given them by :func:`~dermx.evaluate.pipeline.run_evaluation`) and the scoring. ``selection``
    is the headline selection of pairs (all three are computed): ``present`` (target present in the
    reference), ``predicted`` (predicted present) or ``correct`` (present, and the image correctly
    diagnosed). ``agreement_size`` is the
    (h, w) the rater masks are resized to for the rater-agreement ceiling (default: the first model's
    input size; ``native`` with ``map_size="native"``). ``shortcut_test``: on a synthetic set with a
    shortcut class, also run the counterfactual watermark test (:mod:`~dermx.evaluate.benchmark.shortcut`).
    ``examples``: choose and explain the report's example images (:mod:`~dermx.evaluate.benchmark.examples`).
    ``raters``: the annotators whose outlines make the references, the presence labels and the raters'
    ceiling (default: every first-pass rater); a held-out-raters protocol names the raters a DermX+
    model did not learn from. ``pointing_tolerance``: the pointing game's, a share of the shorter side
    of the grid maps are compared on. ``abstain_risk``: the target risk of the abstention rule applied
    to the test images with a model's calibration (:mod:`~dermx.evaluate.benchmark.trust`). ``interventions``:
    also measure each network's intervention curve and its reliance on its characteristics, random orders
    and shuffles over ``intervention_draws`` draws (:mod:`~dermx.evaluate.benchmark.interventions`).
    """

    method: CamMethod = "gradcam"
    fusion: FusionRule = "mean"
    map_size: EvalMapSize = "input"
    threshold: float = 0.5
    selection: Selection = "present"
    baselines: tuple[str, ...] = BASELINES
    n_boot: int = 1000
    seed: int = 0
    batch_size: int = 16
    pointing_tolerance: float = POINTING_TOLERANCE
    abstain_risk: float = 0.1
    agreement: bool = True
    shortcut_test: bool = True
    examples: bool = True
    agreement_size: tuple[int, int] | None = None
    raters: tuple[str, ...] | None = None
    interventions: bool = False
    intervention_draws: int = 20

    def __post_init__(self) -> None:
        if self.intervention_draws < 1:
            raise ValueError(f"intervention_draws must be at least 1, got {self.intervention_draws}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchmarkResult:
    """Tables of a run (:mod:`dermx.runs.tables`): per-pair ``items``, ``baselines``, per-image
    ``images``, the raters scored as the models are (``ceiling``) and the raters' answers (``raters``);
    the conditional rater-agreement summary; example arrays for the report; the models; the images'
    ``groups`` of the trust figures (their attribute is a column of ``images``); (after summarising)
    ``summary``; and the calibration each model's checkpoint carries, one per fold of its ``models`` entry
    (``None`` where it carries none); with ``config.interventions``, the intervention curves, one row per
    (model, order, k) (:mod:`~dermx.evaluate.benchmark.interventions`), written as ``interventions.csv``."""

    items: pd.DataFrame
    baselines: pd.DataFrame
    images: pd.DataFrame
    ceiling: pd.DataFrame
    raters: pd.DataFrame
    agreement: dict[str, Any] | None
    examples: dict[str, np.ndarray]
    config: BenchmarkConfig
    models: dict[str, dict[str, Any]]
    groups: ImageGroups
    summary: dict[str, Any] = field(default_factory=dict)
    calibrations: dict[str, list[ModelCalibration | None]] = field(default_factory=dict)
    interventions: pd.DataFrame | None = None
