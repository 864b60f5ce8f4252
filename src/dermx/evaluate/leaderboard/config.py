"""The choices and the result of a method × model leaderboard run (``leaderboard.json``), and what each
column means: its direction and why it can be undefined."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, get_args

import numpy as np
import pandas as pd

from dermx.choices import CamMethod, Protocol, method_name
from dermx.runs.leaderboard import finite_rows

#: Benchmark settings and map kind of each agreement protocol: (fusion, selection, kind).
PROTOCOLS: dict[str, tuple[str, str, str]] = {
    "dermx": ("mean", "present", "characteristic"),
    "followup": ("relative", "correct", "diagnosis-union"),
}

AGREEMENT: tuple[str, ...] = ("dice", "sensitivity", "specificity", "pointing")

#: Every leaderboard metric and whether higher or lower is better.
DIRECTIONS: dict[str, str] = {
    "dice": "higher", "sensitivity": "higher", "specificity": "higher", "pointing": "higher",
    "deletion_auc": "lower", "insertion_auc": "higher", "deletion_auc_mean": "lower",
    "insertion_auc_mean": "higher", "road_morf": "lower", "road_lerf": "higher", "faithfulness_corr": "higher",
    "mprt_spearman": "lower", "mprt_ssim": "lower", "random_logit": "lower",
    "max_sensitivity": "lower", "avg_sensitivity": "lower",
}

_NO_PAIRS = ("no (image, map) pair to score: the protocol selects none (dermx: the model has no characteristic "
             "outputs, as a dx-only model; followup: no test image diagnosed correctly) or every reference map "
             "is empty")
_FLAT_DROP = "the map or the score's drops are the same for every random subset (Pearson's r needs both to vary)"

#: Why each metric can be undefined (NaN) on an image, the reason given when it is on every image.
UNDEFINED_WHY: dict[str, str] = {
    **dict.fromkeys(AGREEMENT, _NO_PAIRS),
    **dict.fromkeys(("deletion_auc", "insertion_auc", "deletion_auc_mean", "insertion_auc_mean", "road_morf",
                     "road_lerf"), "no test image to perturb"),
    "faithfulness_corr": _FLAT_DROP,
    "mprt_spearman": "a trained or randomised map is constant (rank correlation needs ranks), e.g. all zero "
                     "after the ReLU",
    "mprt_ssim": "both maps are constant (zero data range)",
    "random_logit": "both maps are constant (zero data range)",
    **dict.fromkeys(("max_sensitivity", "avg_sensitivity"),
                    "every map is zero (sensitivity is relative to the map's norm)"),
}


@dataclass(frozen=True)
class LeaderboardConfig:
    """Choices of a leaderboard run (stored in ``leaderboard.json``).

    ``n_images``: test images (first by sorted stem) for faithfulness, sanity and robustness; the
    agreement uses every test image, except for methods that score masked images (Score-CAM: one
    forward pass per channel of the CAM layer per image, e.g. 256 on the demo's models), whose
    agreement uses the first ``score_images`` (``None``: every test image); each row's
    ``agreement_images`` says how many, and a note names the subset. ``steps``: deletion / insertion
    steps. ``mprt_steps``: cascade positions at which maps are recomputed (evenly spaced over the
    randomisable layers, always including the last, full randomisation). ``sensitivity_samples``
    noise draws of radius ``sensitivity_radius``; ``fc_runs`` subsets of ``fc_subset`` pixels for
    faithfulness correlation. Where a column carries a Quantus name, its settings are Quantus' defaults
    or the difference is listed in :func:`deviations` (written to ``leaderboard.json`` and shown
    beside the column in the report).
    """

    methods: tuple[CamMethod, ...] = get_args(CamMethod)
    protocol: Protocol = "dermx"
    n_images: int = 16
    score_images: int | None = 64
    steps: int = 8
    blur_sigma: float = 5.0
    road_percentages: tuple[float, ...] = (20.0, 50.0, 80.0)
    road_noise: float = 0.01
    mprt_steps: int = 3
    sensitivity_samples: int = 3
    sensitivity_radius: float = 0.2
    fc_runs: int = 20
    fc_subset: int = 224
    threshold: float = 0.5
    n_boot: int = 1000
    seed: int = 0
    batch_size: int = 64

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Leaderboard:
    """Rows (model, method, metrics with CIs; methods giving the same maps share a row, ``same_maps``),
    excluded cells with reasons, metrics undefined on every image of a row (model, method, metric,
    reason), notes, MPRT curves, an example image under every (model, method), per model which method to
    trust (:mod:`~dermx.evaluate.leaderboard.trust`) and ``groups``: each row's deletion AUC per group of
    images (``{"by", "score", "images", "models": {model: {method: {"same_maps", "level", "groups"}}}}``,
    :mod:`~dermx.evaluate.leaderboard.run`)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, str]] = field(default_factory=list)
    undefined: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    mprt_curves: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    examples: dict[str, np.ndarray] = field(default_factory=dict)
    config: LeaderboardConfig = field(default_factory=LeaderboardConfig)
    trust: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, Any] = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        """The finite rows as a table (``leaderboard.csv``; with its header even when no row is finite)."""
        return finite_rows(self.rows)


#: How the follow-up protocol differs from the published one (Jalaboi et al. 2023, arXiv 2302.12084).
FOLLOWUP_DIFFERENCES = (
    "follow-up protocol as dermx implements it, not the published run: the models, input size and CAM layer "
    "are those of this run (the study compared 11 ImageNet-pretrained architectures at their own input sizes); "
    "the references are the raters of this DermXDB release (the study used the earlier release, three raters per "
    "image); the maps come from dermx's CAM engine (tested against pytorch-grad-cam), the union map and the "
    "'relative' fusion as dermx.data defines them")


def deviations(config: LeaderboardConfig) -> dict[str, str]:
    """Each column that carries a metric's name from Quantus (0.6) or its paper, and where this run's
    setting differs from it: column → the difference. Columns not listed use the defaults."""
    quantus_fc = (f"{config.fc_runs} random subsets of {config.fc_subset} pixels (Quantus FaithfulnessCorrelation: "
                  "100 of 224); the variance of the subsets is carried into the CI (runs resampled with the images)")
    sensitivity = (f"{config.sensitivity_samples} noise draws of radius {config.sensitivity_radius} (Quantus: 200 "
                   "draws of radius 0.2); the max over few draws is a lower bound of the max over many")
    cascade = (f"similarity after the full cascade; maps at {config.mprt_steps} evenly spaced cascade positions for "
               "the curve (Quantus MPRT: every layer, top down); the share of maps without a rank correlation at "
               "each position is in leaderboard.json")
    out = {
        "deletion_auc": "RISE's deletion: the AUC over [0, 1] including the unperturbed score (Quantus "
                        "PixelFlipping omits it and does not normalise)",
        "insertion_auc": "RISE's insertion on a blurred canvas (σ = 5 px); not in Quantus",
        "road_morf": "the mean target probability over the ROAD percentages (Quantus ROAD scores accuracy, MoRF "
                     "only)",
        "road_lerf": "the mean target probability over the ROAD percentages; Quantus ROAD has no LeRF",
        "faithfulness_corr": quantus_fc, "max_sensitivity": sensitivity, "avg_sensitivity": sensitivity,
        "mprt_spearman": cascade, "mprt_ssim": cascade + "; SSIM on a 7×7 window (Adebayo et al.; Quantus MPRT "
                                                         "uses Spearman)",
        "random_logit": "SSIM on a 7×7 window over the 2-D map (Quantus 0.6 flattens the map first)",
    }
    if config.protocol == "followup":
        out.update(dict.fromkeys(AGREEMENT, FOLLOWUP_DIFFERENCES))
    return out


def parse_methods(text: str | Sequence[str]) -> tuple[CamMethod, ...]:
    """``"all"`` or ``"gradcam,Grad-CAM++,..."`` → the engine's method names, in the order given, each
    once (``all`` stands for every method); :class:`ValueError` naming every unknown name and the
    methods there are."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise ValueError(f"no method given; methods: all, {', '.join(get_args(CamMethod))}")
    unknown = []
    methods: list[CamMethod] = list(get_args(CamMethod)) if "all" in names else []
    for name in (n for n in names if n != "all"):
        try:
            method = method_name(name)
        except ValueError:
            unknown.append(repr(name))
            continue
        if method not in methods:
            methods.append(method)
    if unknown:
        raise ValueError(f"unknown CAM method(s) {', '.join(unknown)}; methods: all, {', '.join(get_args(CamMethod))}")
    return tuple(methods)
