"""The one source of names: diagnoses, characteristics, tags and attributes of DermXDB.

Every other module asks this one for canonical spellings. Lookups accept the spellings found in
the DermXDB release, in the DermX papers and in code (snake_case, hyphenated lower case, spelling
variants); :func:`canonical` maps any of them to the release's spelling.

Unknown names are never dropped: :func:`canonical` returns them unchanged (stripped), records them in
:data:`UNKNOWN_NAMES` and warns once per name.
"""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
import warnings
from collections import Counter
from enum import StrEnum
from typing import Final


class Kind(StrEnum):
    """What a name stands for in a DermXDB annotation."""

    DIAGNOSIS = "diagnosis"
    CHARACTERISTIC = "characteristic"
    TAG = "tag"
    QUALITY = "quality"
    ATTRIBUTE = "attribute"
    EXTRA_CHARACTERISTIC = "extra_characteristic"


#: The six reference diagnoses, in the fixed order used for class indices everywhere in dermx.
DIAGNOSES: Final[tuple[str, ...]] = (
    "Acne",
    "Actinic keratosis",
    "Psoriasis",
    "Seborrheic dermatitis",
    "Viral warts",
    "Vitiligo",
)
#: A legitimate rater answer that is not a reference class.
OTHER_DISEASE: Final[str] = "Other-disease"
#: Diagnosis labels a rater may give: the six classes plus Other-disease.
RATER_DIAGNOSES: Final[tuple[str, ...]] = (*DIAGNOSES, OTHER_DISEASE)

#: The 16 localisable characteristics of DermXDB, alphabetical (their order in every tensor).
CHARACTERISTICS: Final[tuple[str, ...]] = (
    "Closed comedo",
    "Cyst",
    "Dermatoglyph disruption",
    "Leukotrichia",
    "Macule",
    "Nodule",
    "Open comedo",
    "Papule",
    "Patch",
    "Plaque",
    "Pustule",
    "Scale",
    "Scar",
    "Sun damage",
    "Telangiectasia",
    "Thrombosed capillaries",
)
#: The 10 characteristics modelled in the DermX paper (Jalaboi et al., 2023).
PAPER_CHARACTERISTICS: Final[tuple[str, ...]] = (
    "Closed comedo",
    "Dermatoglyph disruption",
    "Leukotrichia",
    "Open comedo",
    "Papule",
    "Patch",
    "Plaque",
    "Pustule",
    "Scale",
    "Sun damage",
)
#: Localised in the repeat pass only; read and counted, but not one of the 16.
EXTRA_CHARACTERISTICS: Final[tuple[str, ...]] = ("Hyperkeratosis",)

#: Non-localisable characteristics, given as tags.
TAGS: Final[tuple[str, ...]] = (
    "Acral distribution",
    "Dark skin",
    "Elderly",
    "Exposed areas",
    "Extensor sites",
    "Female",
    "Intertriginous",
    "Köbnerization",
    "Light skin",
    "Male",
    "Palmo-plantar distribution",
    "Periorificial",
    "Seborrheic region",
    "Symmetrical",
    "Young",
)
LOW_QUALITY: Final[str] = "Low-quality"

#: Attributes of basic terms, canonical spelling (the release mixes hyphenated and joined forms).
ATTRIBUTES: Final[tuple[str, ...]] = (
    "Convex-margins",
    "Depigmented",
    "Fine",
    "Flat-surface",
    "Greasy",
    "Gritty",
    "Halo",
    "Hard",
    "Hyperkeratotic",
    "Hyperpigmented",
    "Hypopigmented",
    "Indurated",
    "Normal-pigmentation-island",
    "Poorly-circumscribed",
    "Red",
    "Rough",
    "Round",
    "Salmon-pink",
    "Skin-coloured",
    "Thick",
    "Thin",
    "Well-circumscribed",
    "White",
    "Yellow",
)

KIND: Final[dict[str, Kind]] = {
    **dict.fromkeys(RATER_DIAGNOSES, Kind.DIAGNOSIS),
    **dict.fromkeys(CHARACTERISTICS, Kind.CHARACTERISTIC),
    **dict.fromkeys(EXTRA_CHARACTERISTICS, Kind.EXTRA_CHARACTERISTIC),
    **dict.fromkeys(TAGS, Kind.TAG),
    LOW_QUALITY: Kind.QUALITY,
    **dict.fromkeys(ATTRIBUTES, Kind.ATTRIBUTE),
}

# Explicit aliases beyond the automatic key normalisation (case, separators, accents).
_EXTRA_ALIASES: Final[dict[str, str]] = {
    "dermatoglyphic disruption": "Dermatoglyph disruption",
    "thrombosed capillary": "Thrombosed capillaries",
    "comedo open": "Open comedo",
    "comedo closed": "Closed comedo",
    "open comedones": "Open comedo",
    "closed comedones": "Closed comedo",
    "comedones": "Open comedo",
    "kobnerisation": "Köbnerization",
    "koebnerization": "Köbnerization",
    "koebnerisation": "Köbnerization",
    "ak": "Actinic keratosis",
    "seborrhoeic dermatitis": "Seborrheic dermatitis",
    "seborrheic keratosis dermatitis": "Seborrheic dermatitis",
    "wart": "Viral warts",
    "warts": "Viral warts",
    "viral wart": "Viral warts",
    "other": "Other-disease",
    "other disease": "Other-disease",
    "skin coloured": "Skin-coloured",
    "skin colored": "Skin-coloured",
    "hyper pigmented": "Hyperpigmented",
    "hypo pigmented": "Hypopigmented",
    "low quality": "Low-quality",
}

#: Names seen that are in no list: name -> times seen. Filled by :func:`canonical`.
UNKNOWN_NAMES: Counter[str] = Counter()


def _key(name: str) -> str:
    """Normalise a spelling for lookup: accents folded, lower case, separators to one space."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[\s_\-]+", " ", folded.strip().lower())


_LOOKUP: dict[str, str] = {_key(n): n for n in KIND}
_LOOKUP.update({_key(alias): name for alias, name in _EXTRA_ALIASES.items()})


@functools.lru_cache(maxsize=4096)
def _find(name: str) -> str | None:
    """Look a spelling up, also without a plural ``-s``/``-es`` (``Papules``, ``Pustules``).

    Cached: a release spells the same few dozen names tens of thousands of times."""
    key = _key(name)
    for candidate in (key, key.removesuffix("s"), key.removesuffix("es")):
        if candidate in _LOOKUP:
            return _LOOKUP[candidate]
    return None


def canonical(name: str, *, warn: bool = True) -> str:
    """Return the release spelling of ``name``.

    Accepts any case, ``_``/``-``/space separators, accent-free spellings (``Kobnerization``),
    simple plurals (``Papules``) and the paper spellings (``dermatoglyphic disruption``). An unknown
    name is returned stripped but otherwise unchanged, counted in :data:`UNKNOWN_NAMES`, and warned
    about once (``warn=False`` silences the warning but still counts).
    """
    found = _find(name)
    if found is not None:
        return found
    stripped = name.strip()
    if warn and stripped not in UNKNOWN_NAMES:
        warnings.warn(f"unknown DermXDB name {stripped!r}: kept as is", stacklevel=2)
    UNKNOWN_NAMES[stripped] += 1
    return stripped


def nearest(name: str) -> str | None:
    """The known name whose lookup key is most like ``name``'s (:func:`difflib.get_close_matches`,
    similarity ratio 2·matches / total length ≥ 0.75), or ``None`` when none is that close:
    ``Actinic keratoses`` → ``Actinic keratosis``."""
    close = difflib.get_close_matches(_key(name), list(_LOOKUP), n=1, cutoff=0.75)
    return _LOOKUP[close[0]] if close else None


def unknown_name(name: str) -> str:
    """The load-report text of a name in no list, with the nearest known one: ``unknown name
    'Actinic keratoses' (nearest known name: 'Actinic keratosis')``."""
    from dermx.text import shorten

    close = nearest(name)
    hint = f"nearest known name: {close!r}" if close else "no known name is close"
    return f"unknown name {shorten(name.strip())!r} ({hint})"


def kind_of(name: str) -> Kind | None:
    """The :class:`Kind` of a canonical or aliased name, or ``None`` if unknown."""
    found = _find(name)
    return KIND[found] if found else None


def resolve(names: str | list[str] | tuple[str, ...] | None, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """Canonicalise user-given names and check each is one of ``allowed``.

    ``None`` gives ``allowed``; a comma-separated string is split. Raises ``ValueError`` naming the
    offending entries and the allowed values.
    """
    if names is None:
        return allowed
    items = [n for n in names.split(",") if n.strip()] if isinstance(names, str) else list(names)
    out = tuple(canonical(n, warn=False) for n in items)
    bad = [n for n, c in zip(items, out, strict=True) if c not in allowed]
    if bad:
        raise ValueError(f"unknown name(s) {bad}; expected some of {list(allowed)}")
    return out
