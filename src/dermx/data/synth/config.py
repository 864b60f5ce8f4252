"""Parameters of the synthetic DermXDB generator and the summary it returns."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, get_args

from dermx import vocab
from dermx.choices import ProfileSet
from dermx.data.synth.skin import SKIN_TONES

#: Largest rater number: ``labeller12`` would read as rater 1's repeat pass (DermXDB naming).
MAX_RATERS = 11


@dataclass(frozen=True)
class RaterModel:
    """How simulated raters disagree with the drawn truth and with each other.

    Rates are probabilities per lesion (``miss_rate``, ``confusion_rate``, ``extra_rate``) or per
    rating (``wrong_diagnosis_rate``, ``other_disease_rate``, ``second_diagnosis_rate``). Lengths are
    relative to a lesion's equivalent radius s = √(area/π):

    - ``jitter``: standard deviation of the smooth boundary displacement along the outward normal,
      and half that for a rigid shift of the whole outline;
    - ``dilation``: mean outward offset (raters outline generously); ``margin_px`` adds an absolute
      offset in pixels, drawn per rater from U(0, margin_px), so that tiny lesions get visible outlines.

    Each rater r has personal multipliers of jitter and miss rate, exp(N(0, ``rater_spread``)), and a
    personal dilation offset N(0, ``rater_spread`` · ``dilation``).
    """

    jitter: float = 0.15
    miss_rate: float = 0.12
    dilation: float = 0.15
    margin_px: float = 1.5
    confusion_rate: float = 0.08
    extra_rate: float = 0.04
    wrong_diagnosis_rate: float = 0.1
    other_disease_rate: float = 0.04
    second_diagnosis_rate: float = 0.05
    rater_spread: float = 0.3

    def __post_init__(self) -> None:
        for name in ("miss_rate", "confusion_rate", "extra_rate", "wrong_diagnosis_rate",
                     "other_disease_rate", "second_diagnosis_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        if self.wrong_diagnosis_rate + self.other_disease_rate > 1.0:
            raise ValueError("wrong_diagnosis_rate + other_disease_rate must not exceed 1")
        for name in ("jitter", "margin_px", "rater_spread"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a synthetic DermXDB: the same config gives the same bytes.

    ``size`` is (height, width). Each image is rated by k ~ U{min_raters..n_raters} raters, a random
    subset of ``labeller1..labeller{n_raters}``; a fraction ``repeat_fraction`` of the images is rated
    a second time by the same raters (files ``labeller{N}2_...``). With ``shortcut`` set to a
    diagnosis, a watermark is stamped on a fraction ``shortcut_rate[0]`` of that class's images and
    ``shortcut_rate[1]`` of the others'.

    **Skin-tone effect** (off by default; a known answer for fairness tools): ``tone_contrast`` maps a
    skin tone to the factor its lesions' contrast is multiplied by (the painted image becomes
    ``skin + c · (painted − skin)``: 1 leaves it, 0.4 makes lesions on that skin faint); and
    ``tone_probabilities`` replaces the share of patients of each tone
    (:data:`~dermx.data.synth.skin.TONE_PROBABILITIES`), e.g. fewer dark-skinned patients. The ground
    truth masks and the raters do not change: only what a model sees does.

    ``profiles`` picks the findings each class shows (:data:`~dermx.data.synth.profiles.PROFILE_SETS`):
    ``overlapping`` (the default: classes share characteristics, so telling them apart needs what the lesions
    look like) or ``distinct`` (each class always shows a characteristic of its own: the characteristics
    name the class, the known answer for concept-bottleneck models and interventions).
    """

    n_images: int = 300
    n_raters: int = 8
    min_raters: int = 3
    seed: int = 0
    size: tuple[int, int] = (192, 256)
    shortcut: str | None = None
    shortcut_rate: tuple[float, float] = (0.95, 0.02)
    repeat_fraction: float = 0.1
    raters: RaterModel = field(default_factory=RaterModel)
    layouts: Path | None = None
    n_folds: int = 10
    jpeg_quality: int = 92
    hair_rate: float = 0.3
    tone_contrast: dict[str, float] = field(default_factory=dict)
    tone_probabilities: dict[str, float] | None = None
    profiles: ProfileSet = "overlapping"

    def __post_init__(self) -> None:
        if self.profiles not in get_args(ProfileSet):
            raise ValueError(f"unknown profile set {self.profiles!r}; profile sets: {', '.join(get_args(ProfileSet))}")
        if self.n_images < 1:
            raise ValueError(f"n_images must be >= 1, got {self.n_images}")
        if not 1 <= self.min_raters <= self.n_raters <= MAX_RATERS:
            raise ValueError(f"need 1 <= min_raters <= n_raters <= {MAX_RATERS}, "
                             f"got min_raters={self.min_raters}, n_raters={self.n_raters}")
        height, width = self.size
        if height < 32 or width < 32:
            raise ValueError(f"size must be at least 32x32, got {height}x{width}")
        if not 0.0 <= self.repeat_fraction <= 1.0:
            raise ValueError(f"repeat_fraction must be in [0, 1], got {self.repeat_fraction}")
        if self.shortcut is not None:
            object.__setattr__(self, "shortcut", vocab.resolve([self.shortcut], vocab.DIAGNOSES)[0])
        if self.n_folds < 2:
            raise ValueError(f"n_folds must be >= 2, got {self.n_folds}")
        tones = set(SKIN_TONES)
        unknown = sorted((set(self.tone_contrast) | set(self.tone_probabilities or {})) - tones)
        if unknown:
            raise ValueError(f"unknown skin tone(s) {unknown}; tones: {sorted(tones)}")
        if any(not 0.0 <= c <= 1.0 for c in self.tone_contrast.values()):
            raise ValueError(f"tone_contrast factors must be in [0, 1], got {self.tone_contrast}")
        if self.tone_probabilities is not None and (
                any(p < 0 for p in self.tone_probabilities.values()) or not sum(self.tone_probabilities.values()) > 0):
            raise ValueError(f"tone_probabilities must be non-negative with a positive sum, got "
                             f"{self.tone_probabilities}")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (paths as strings, tuples as lists)."""
        data = asdict(self)
        data["layouts"] = str(self.layouts) if self.layouts else None
        return data


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`~dermx.data.synth.generate` wrote."""

    out: Path
    n_images: int
    n_ratings: int
    n_repeat_ratings: int
    n_masks: int
    n_lesions: int
    n_watermarked: int
    diagnoses: Counter[str]
    characteristics: Counter[str]

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        return [
            f"folder:      {self.out}",
            f"images:      {self.n_images} ({', '.join(f'{d} {n}' for d, n in sorted(self.diagnoses.items()))})",
            f"ratings:     {self.n_ratings} first pass + {self.n_repeat_ratings} repeat pass",
            f"mask PNGs:   {self.n_masks}",
            f"lesions:     {self.n_lesions} drawn; watermarked images: {self.n_watermarked}",
        ]
