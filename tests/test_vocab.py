import warnings

import pytest

from dermx import vocab


@pytest.mark.parametrize(("alias", "name"), [
    ("dermatoglyphic disruption", "Dermatoglyph disruption"),
    ("Thrombosed capillary", "Thrombosed capillaries"),
    ("sun_damage", "Sun damage"),
    ("open-comedo", "Open comedo"),
    ("Papules", "Papule"),
    ("Pustules", "Pustule"),
    ("Kobnerization", "Köbnerization"),
    ("Hyper-pigmented", "Hyperpigmented"),
    ("hypopigmented", "Hypopigmented"),
    ("VIRAL WARTS", "Viral warts"),
    ("other-disease", "Other-disease"),
])
def test_aliases_map_to_release_spelling(alias: str, name: str) -> None:
    assert vocab.canonical(alias) == name


def test_every_release_name_is_its_own_canonical() -> None:
    for name in vocab.KIND:
        assert vocab.canonical(name) == name


def test_unknown_name_kept_warned_once_and_counted() -> None:
    vocab.UNKNOWN_NAMES.pop("Glitter", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert vocab.canonical(" Glitter ") == "Glitter"
        assert vocab.canonical("Glitter") == "Glitter"
    assert len([w for w in caught if "Glitter" in str(w.message)]) == 1
    assert vocab.UNKNOWN_NAMES["Glitter"] == 2


def test_counts_and_kinds() -> None:
    assert len(vocab.DIAGNOSES) == 6
    assert len(vocab.CHARACTERISTICS) == 16
    assert set(vocab.PAPER_CHARACTERISTICS) <= set(vocab.CHARACTERISTICS)
    assert vocab.kind_of("plaque") is vocab.Kind.CHARACTERISTIC
    assert vocab.kind_of("Other-disease") is vocab.Kind.DIAGNOSIS
    assert vocab.kind_of("nothing at all") is None


def test_resolve_checks_membership() -> None:
    assert vocab.resolve("papule, scale", vocab.CHARACTERISTICS) == ("Papule", "Scale")
    assert vocab.resolve(None, vocab.DIAGNOSES) == vocab.DIAGNOSES
    with pytest.raises(ValueError, match="Acne"):
        vocab.resolve(["Acne"], vocab.CHARACTERISTICS)
