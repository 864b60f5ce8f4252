"""Diagnosis profiles: which characteristics each class shows, how many, how large, and where.

A profile is a list of :class:`Finding`: characteristic c appears with probability ``probability``
(independently of the others), as n ~ U{count} instances of radius R ~ U(radius) · min(H, W). A
finding ``within`` another characteristic is placed inside a random instance of it (scale on
plaques, white hairs in depigmented patches, thrombosed capillaries in warts) and is skipped when
that parent is absent. Classes overlap on purpose (papules in acne and warts, scale in psoriasis,
seborrheic dermatitis and actinic keratosis, patches in vitiligo and seborrheic dermatitis), so
telling them apart needs colour, texture and context. Psoriasis and seborrheic dermatitis overlap most
(as sebopsoriasis does): red plaques in 60 % of the seborrheic dermatitis images, erythematous patches
in 40 % of the psoriasis ones, whose plaques carry silvery scale in only 60 % of images. Without scale
a psoriasis image can pass for seborrheic dermatitis, which makes a shortcut planted on either class
(``SynthConfig.shortcut``) the easiest cue to learn.

These ``overlapping`` profiles are the default. On them the characteristics do not determine the
diagnosis: the best classifier of the drawn characteristics' presence (a lookup table of the training
images' presence vectors) reaches an accuracy of about 0.90. The ``distinct`` profile set
(:data:`PROFILE_SETS`, ``SynthConfig.profiles``) is the known answer for concept-bottleneck models and
interventions: the same findings with a few probabilities changed (:data:`DISTINCT_CHANGES`) so that
every class but seborrheic dermatitis always shows a characteristic no other class shows
(:data:`MARKERS`: acne pustules, psoriasis plaques, vitiligo leukotrichia, wart thrombosed capillaries,
actinic keratosis sun damage) and seborrheic dermatitis shows none of them. There the drawn
characteristics name the class.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from dermx import vocab
from dermx.choices import ProfileSet
from dermx.data.synth.geometry import Lesion, band, blob, curve


@dataclass(frozen=True)
class Finding:
    characteristic: str
    probability: float
    count: tuple[int, int]
    radius: tuple[float, float]
    style: str = ""
    attributes: tuple[str, ...] = ()
    within: str | None = None
    hole_rate: float = 0.0
    irregularity: float = 0.12

    def __post_init__(self) -> None:
        if self.characteristic not in vocab.CHARACTERISTICS:
            raise ValueError(f"unknown characteristic {self.characteristic!r}")


F = Finding
#: Diagnosis → findings, parents before the findings placed within them.
PROFILES: dict[str, tuple[Finding, ...]] = {
    "Acne": (
        F("Papule", 0.9, (3, 10), (0.012, 0.025), "", ("Red", "Round")),
        F("Pustule", 0.7, (1, 6), (0.012, 0.022), "", ("Yellow", "Round")),
        F("Open comedo", 0.5, (2, 8), (0.005, 0.009), "", ("Hyperpigmented",)),
        F("Closed comedo", 0.5, (2, 8), (0.007, 0.012), "", ("Skin-coloured",)),
        F("Scar", 0.35, (1, 4), (0.012, 0.028), "", ("Round",)),
        F("Nodule", 0.15, (1, 2), (0.035, 0.055), "", ("Red", "Indurated")),
        F("Cyst", 0.08, (1, 1), (0.045, 0.065)),
        F("Macule", 0.2, (1, 3), (0.012, 0.03), "erythematous", ("Red",)),
    ),
    "Psoriasis": (
        F("Plaque", 1.0, (1, 3), (0.1, 0.22), "", ("Red", "Well-circumscribed", "Thick"), hole_rate=0.15,
          irregularity=0.2),
        F("Scale", 0.6, (1, 2), (0.06, 0.14), "thick", ("White", "Thick"), within="Plaque"),
        F("Papule", 0.2, (2, 6), (0.015, 0.03), "", ("Red",)),
        F("Patch", 0.4, (1, 2), (0.06, 0.14), "erythematous", ("Red",)),
    ),
    "Vitiligo": (
        F("Patch", 1.0, (1, 3), (0.1, 0.26), "depigmented",
          ("Depigmented", "Well-circumscribed", "Convex-margins"), hole_rate=0.3, irregularity=0.22),
        F("Leukotrichia", 0.5, (1, 2), (0.04, 0.08), "", ("White",), within="Patch"),
        F("Macule", 0.35, (1, 4), (0.015, 0.04), "depigmented", ("Depigmented",)),
    ),
    "Viral warts": (
        F("Papule", 0.95, (1, 4), (0.035, 0.07), "wart", ("Skin-coloured", "Rough", "Hyperkeratotic")),
        F("Dermatoglyph disruption", 0.7, (1, 2), (0.03, 0.06), "", (), within="Papule"),
        F("Thrombosed capillaries", 0.6, (1, 2), (0.015, 0.03), "", (), within="Papule"),
        F("Plaque", 0.15, (1, 1), (0.08, 0.14), "", ("Rough", "Skin-coloured")),
        F("Nodule", 0.05, (1, 1), (0.04, 0.06)),
    ),
    "Actinic keratosis": (
        F("Sun damage", 0.8, (1, 1), (0.25, 0.4), "", (), irregularity=0.25),
        F("Scale", 0.85, (1, 3), (0.04, 0.09), "gritty", ("Rough", "Gritty", "Yellow")),
        F("Macule", 0.4, (1, 3), (0.025, 0.05), "erythematous", ("Red", "Poorly-circumscribed")),
        F("Patch", 0.3, (1, 2), (0.06, 0.11), "erythematous", ("Red", "Poorly-circumscribed")),
        F("Plaque", 0.12, (1, 1), (0.05, 0.09), "", ("Hyperkeratotic",)),
        F("Telangiectasia", 0.3, (1, 3), (0.05, 0.1)),
        F("Papule", 0.12, (1, 2), (0.015, 0.03), "", ("Red",)),
    ),
    "Seborrheic dermatitis": (
        F("Patch", 0.95, (1, 3), (0.09, 0.2), "erythematous", ("Salmon-pink", "Poorly-circumscribed"),
          irregularity=0.22),
        F("Scale", 0.8, (1, 2), (0.05, 0.12), "greasy", ("Greasy", "Yellow", "Fine"), within="Patch"),
        F("Plaque", 0.6, (1, 2), (0.08, 0.16), "", ("Red", "Well-circumscribed")),
        F("Macule", 0.15, (1, 3), (0.02, 0.04), "erythematous", ("Red",)),
        F("Papule", 0.1, (1, 3), (0.012, 0.025), "", ("Red",)),
        F("Telangiectasia", 0.1, (1, 2), (0.05, 0.09)),
    ),
}

#: The ``distinct`` profile set as changes to :data:`PROFILES`: class → characteristic → its new probability
#: (0 removes the finding). Five classes then always show a characteristic no other class shows
#: (:data:`MARKERS`), and seborrheic dermatitis is the class that shows none of them.
DISTINCT_CHANGES: dict[str, dict[str, float]] = {
    "Acne": {"Pustule": 1.0},
    "Vitiligo": {"Leukotrichia": 1.0},
    "Viral warts": {"Papule": 1.0, "Thrombosed capillaries": 1.0, "Plaque": 0.0},
    "Actinic keratosis": {"Sun damage": 1.0, "Plaque": 0.0},
    "Seborrheic dermatitis": {"Plaque": 0.0},
}
#: The characteristic each class always shows and no other class shows in the ``distinct`` set.
MARKERS: dict[str, str] = {"Acne": "Pustule", "Psoriasis": "Plaque", "Vitiligo": "Leukotrichia",
                           "Viral warts": "Thrombosed capillaries", "Actinic keratosis": "Sun damage"}


def _changed(profiles: dict[str, tuple[Finding, ...]],
             changes: dict[str, dict[str, float]]) -> dict[str, tuple[Finding, ...]]:
    """``profiles`` with the probabilities of ``changes`` (findings at probability 0 left out)."""
    out = {}
    for diagnosis, findings in profiles.items():
        new = changes.get(diagnosis, {})
        unknown = set(new) - {f.characteristic for f in findings}
        if unknown:
            raise ValueError(f"{diagnosis} has no finding {sorted(unknown)} to change")
        out[diagnosis] = tuple(replace(f, probability=p) for f in findings
                               if (p := new.get(f.characteristic, f.probability)) > 0)
    return out


#: Profile sets by name (:data:`~dermx.choices.ProfileSet`; module docstring).
PROFILE_SETS: dict[str, dict[str, tuple[Finding, ...]]] = {
    "overlapping": PROFILES, "distinct": _changed(PROFILES, DISTINCT_CHANGES)}

#: Non-localisable tags typical of each class, each given by a rater with probability 0.4.
CLASS_TAGS: dict[str, tuple[str, ...]] = {
    "Acne": ("Seborrheic region", "Young"),
    "Psoriasis": ("Extensor sites", "Symmetrical", "Köbnerization"),
    "Vitiligo": ("Symmetrical", "Periorificial", "Acral distribution"),
    "Viral warts": ("Acral distribution", "Palmo-plantar distribution"),
    "Actinic keratosis": ("Exposed areas", "Elderly"),
    "Seborrheic dermatitis": ("Seborrheic region", "Intertriginous"),
}

#: Diagnoses a rater mistakes a class for (a wrong diagnosis is uniform over these).
CONFUSED_DIAGNOSES: dict[str, tuple[str, ...]] = {
    "Acne": ("Viral warts", "Seborrheic dermatitis"),
    "Psoriasis": ("Seborrheic dermatitis", "Actinic keratosis"),
    "Vitiligo": ("Seborrheic dermatitis",),
    "Viral warts": ("Actinic keratosis", "Acne"),
    "Actinic keratosis": ("Psoriasis", "Seborrheic dermatitis", "Viral warts"),
    "Seborrheic dermatitis": ("Psoriasis", "Actinic keratosis", "Vitiligo"),
}

#: Line-like characteristics: drawn along a centre line, outlined as a thin band around it.
LINEAR: frozenset[str] = frozenset({"Telangiectasia"})


def style_for(diagnosis: str, characteristic: str) -> tuple[str, tuple[str, ...]]:
    """The (style, attributes) a class gives a characteristic; defaults when not in its profile."""
    for finding in PROFILES[diagnosis]:
        if finding.characteristic == characteristic:
            return finding.style, finding.attributes
    return "", ()


def _place(rng: np.random.Generator, finding: Finding, centre: np.ndarray, radius: float) -> Lesion:
    if finding.characteristic in LINEAR:
        path = curve(rng, centre, 2 * radius, points=10, wiggle=0.35)
        return Lesion(finding.characteristic, (band(path, 1.5),), finding.style, finding.attributes, path)
    outer = blob(rng, centre, radius, irregularity=finding.irregularity,
                 elongation=float(rng.uniform(1.0, 1.5)))
    rings: tuple[np.ndarray, ...] = (outer,)
    attributes = finding.attributes
    if rng.random() < finding.hole_rate:
        rings = (outer, blob(rng, centre + rng.normal(0, 0.1 * radius, 2), 0.35 * radius))
        attributes = (*attributes, "Normal-pigmentation-island") if finding.style == "depigmented" \
            else attributes
    return Lesion(finding.characteristic, rings, finding.style, attributes)


def plan_lesions(rng: np.random.Generator, diagnosis: str, size: tuple[int, int],
                 profiles: ProfileSet = "overlapping") -> list[Lesion]:
    """Draw the lesions of one image of ``diagnosis`` from its profile in the set ``profiles`` (at least one
    lesion)."""
    height, width = size
    scale = min(height, width)
    lesions: list[Lesion] = []
    for finding in PROFILE_SETS[profiles][diagnosis]:
        parents = [x for x in lesions if x.characteristic == finding.within] if finding.within else []
        present = rng.random() < finding.probability or not lesions
        if not present or (finding.within and not parents):
            continue
        for _ in range(int(rng.integers(finding.count[0], finding.count[1] + 1))):
            radius = float(rng.uniform(*finding.radius)) * scale
            if parents:
                parent = parents[int(rng.integers(len(parents)))]
                centre = parent.outer.mean(axis=0) + rng.normal(0, 0.3 * parent.radius, 2)
                radius = min(radius, 0.8 * parent.radius)
            else:
                margin = min(radius, 0.4 * scale)
                centre = rng.uniform((margin, margin), (width - margin, height - margin))
            lesions.append(_place(rng, finding, centre, radius))
    return lesions
