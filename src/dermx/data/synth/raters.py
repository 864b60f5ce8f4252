"""Simulated dermatologists: outline the drawn lesions with realistic disagreement.

For each lesion of equivalent radius s (px), a rater with traits (j, m, d, μ) — jitter and miss
multipliers, personal dilation and pixel margin — does the following:

- misses it with probability p = min(0.95, miss_rate · m · (1 + 2·exp(−s/3))): tiny lesions are
  missed up to three times more often;
- otherwise outlines every ring by moving each vertex along its outward normal by
  s·(dilation + d + w(t)) + μ, where w(t) = Σ_{k=1..3} a_k cos(k t + φ_k), a_k ~ N(0, jitter·j / k), t
  the vertex's angle along the ring; adds a rigid shift N(0, (jitter·j·s/2)²) and hand tremor
  N(0, 0.3²) px per vertex. Hole rings move the other way (a generous outline shrinks the hole);
  a hole the offset would close is left out;
- relabels it as its confusable partner with probability ``confusion_rate`` (papule ↔ pustule, open ↔
  closed comedo, macule ↔ patch, plaque → patch, nodule ↔ cyst), or also outlines it under the
  partner's name with probability ``extra_rate``.

Per rating: one spurious macule with probability ``extra_rate``; the diagnosis is Other-disease with
probability ``other_disease_rate``, a confusable class with ``wrong_diagnosis_rate``, else the true
one; a second (differential) diagnosis is added with ``second_diagnosis_rate``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dermx import vocab
from dermx.data.synth.config import RaterModel
from dermx.data.synth.geometry import Array, Lesion, blob, outward_normals, round_rings, signed_area
from dermx.data.synth.profiles import CLASS_TAGS, CONFUSED_DIAGNOSES

CONFUSABLE: dict[str, str] = {
    "Papule": "Pustule",
    "Pustule": "Papule",
    "Open comedo": "Closed comedo",
    "Closed comedo": "Open comedo",
    "Macule": "Patch",
    "Patch": "Macule",
    "Plaque": "Patch",
    "Nodule": "Cyst",
    "Cyst": "Nodule",
}
#: Probability that a rater gives each applicable non-localisable tag.
TAG_RATE = 0.4
#: Probability that a rater keeps each attribute of a lesion's profile.
ATTRIBUTE_RATE = 0.7


@dataclass(frozen=True)
class RaterTraits:
    """A rater's personal habits, fixed over all images (see the module docstring)."""

    jitter: float
    miss: float
    dilation: float
    margin_px: float

    @classmethod
    def draw(cls, seed: int, rater: int, model: RaterModel) -> RaterTraits:
        rng = np.random.default_rng([seed, 7, rater])
        spread = model.rater_spread
        return cls(jitter=float(np.exp(rng.normal(0, spread))), miss=float(np.exp(rng.normal(0, spread))),
                   dilation=float(rng.normal(0, spread * model.dilation)),
                   margin_px=float(rng.uniform(0, model.margin_px)))


@dataclass(frozen=True)
class Patient:
    """What a rater may tag about the person in the image."""

    skin_tone: str
    age: str
    sex: str


@dataclass(frozen=True)
class RatingDraft:
    """One simulated annotation file before it is written."""

    annotator: str
    diagnoses: tuple[str, ...]
    tags: tuple[str, ...]
    outlines: tuple[Lesion, ...]


def _outline_rings(rng: np.random.Generator, lesion: Lesion, traits: RaterTraits,
                   model: RaterModel) -> tuple[Array, ...]:
    s = max(lesion.radius, 0.5)
    jitter = model.jitter * traits.jitter
    shift = rng.normal(0, 0.5 * jitter * s, 2)
    rings: list[Array] = []
    for index, ring in enumerate(lesion.rings):
        t = np.linspace(0, 2 * np.pi, len(ring), endpoint=False)
        k = np.arange(1, 4)[:, None]
        wobble = (rng.normal(0, jitter, (3, 1)) / k * np.cos(k * t + rng.uniform(0, 2 * np.pi, (3, 1)))).sum(0)
        offset = s * (model.dilation + traits.dilation + wobble) + traits.margin_px
        if index > 0:
            hole_radius = np.sqrt(abs(signed_area(ring)) / np.pi)
            if offset.max() > 0.7 * hole_radius:
                continue
            offset = -offset
        moved = ring + offset[:, None] * outward_normals(ring) + shift + rng.normal(0, 0.3, ring.shape)
        rings.append(moved)
    return round_rings(tuple(rings))


def _kept_attributes(rng: np.random.Generator, attributes: tuple[str, ...]) -> tuple[str, ...]:
    kept = [a for a in attributes if rng.random() < ATTRIBUTE_RATE]
    return tuple(kept[i] for i in rng.permutation(len(kept)))


def _outlines(rng: np.random.Generator, lesions: list[Lesion], traits: RaterTraits, model: RaterModel,
              size: tuple[int, int]) -> list[Lesion]:
    outlines: list[Lesion] = []
    for lesion in lesions:
        p_miss = min(0.95, model.miss_rate * traits.miss * (1 + 2 * np.exp(-lesion.radius / 3)))
        if rng.random() < p_miss:
            continue
        rings = _outline_rings(rng, lesion, traits, model)
        name = lesion.characteristic
        partner = CONFUSABLE.get(name)
        if partner and rng.random() < model.confusion_rate:
            name = partner
        attributes = _kept_attributes(rng, lesion.attributes)
        outlines.append(Lesion(name, rings, attributes=attributes))
        if partner and name != partner and rng.random() < model.extra_rate:
            outlines.append(Lesion(partner, rings))
    if rng.random() < model.extra_rate:
        height, width = size
        centre = rng.uniform((0.1 * width, 0.1 * height), (0.9 * width, 0.9 * height))
        outlines.append(Lesion("Macule", round_rings((blob(rng, centre, 0.03 * min(size)),))))
    return outlines


def _diagnoses(rng: np.random.Generator, truth: str, model: RaterModel) -> tuple[str, ...]:
    u = rng.random()
    if u < model.other_disease_rate:
        first = vocab.OTHER_DISEASE
    elif u < model.other_disease_rate + model.wrong_diagnosis_rate:
        first = str(rng.choice(CONFUSED_DIAGNOSES[truth]))
    else:
        first = truth
    if rng.random() < model.second_diagnosis_rate:
        others = [d for d in (truth, *CONFUSED_DIAGNOSES[truth]) if d != first]
        return first, str(rng.choice(others))
    return (first,)


def _tags(rng: np.random.Generator, truth: str, patient: Patient) -> tuple[str, ...]:
    candidates: tuple[str, ...] = {"light": ("Light skin",), "dark": ("Dark skin",)}.get(patient.skin_tone, ())
    candidates += {"young": ("Young",), "elderly": ("Elderly",)}.get(patient.age, ())
    candidates += ("Male",) if patient.sex == "male" else ("Female",)
    candidates += CLASS_TAGS[truth]
    return tuple(t for t in dict.fromkeys(candidates) if rng.random() < TAG_RATE)


def rate(rng: np.random.Generator, annotator: str, lesions: list[Lesion], truth: str, patient: Patient,
         traits: RaterTraits, model: RaterModel, size: tuple[int, int]) -> RatingDraft:
    """One rater's annotation of one image (first or repeat pass, by ``annotator``)."""
    outlines = _outlines(rng, lesions, traits, model, size)
    return RatingDraft(annotator, _diagnoses(rng, truth, model), _tags(rng, truth, patient), tuple(outlines))
