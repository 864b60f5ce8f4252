"""Issue 14, own vocabularies: any class names (an eczema class), and characteristics as CSV columns in
the SkinCon layout, mapped onto DermXDB's names where they coincide."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dermx import vocab
from dermx.data import DermXDBError
from dermx.models import load_checkpoint
from dermx.predict import Predictor
from dermx.train import TrainConfig, fit, read_table
from dermx.vocab_map import characteristic_name, diagnosis_name, read_aliases

#: Concept columns in the order of SkinCon's annotation table (a subset of its 48).
SKINCON = ("Papule", "Plaque", "Pustule", "Bulla", "Patch", "Nodule", "Ulcer", "Scale", "Scar", "Telangiectasia",
           "Comedo", "Cyst")
COLOURS = {"eczema": (200, 60, 60), "melanoma": (40, 40, 40), "psoriasis": (220, 200, 200)}


def _images(folder: Path, per_class: int = 6) -> list[tuple[str, str]]:
    rng = np.random.default_rng(0)
    rows = []
    for name, colour in COLOURS.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(80, 120, size=(24, 28, 3), dtype=np.uint8)
            pixels[6:18, 8:20] = colour
            Image.fromarray(pixels).save(folder / name / f"{name}{i}.png")
            rows.append((f"{name}/{name}{i}.png", name))
    return rows


def _train(out: Path, **options: object):
    config = TrainConfig.of(preset="tiny", input_size=(32, 32), epochs=1, batch_size=4, pretrained=False,
                         val_fraction=0.3, progress=False, out=str(out), lr=1e-3)
    return fit(config.replace(**options))


def test_names_map_onto_dermxdb_where_they_coincide(tmp_path: Path) -> None:
    assert diagnosis_name(" psoriasis ") == "Psoriasis" and diagnosis_name("Eczema") == "Eczema"
    assert characteristic_name("papules") == "Papule" and characteristic_name("Ulcer") == "Ulcer"
    assert characteristic_name("Comedo") == "Comedo"  # open or closed? not guessed
    (tmp_path / "aliases.csv").write_text("alias,name\nplaque psoriasis,Psoriasis\nComedo,Open comedo\n")
    aliases = read_aliases(tmp_path / "aliases.csv")
    assert diagnosis_name("Plaque_Psoriasis", aliases) == "Psoriasis"
    assert characteristic_name("comedo", aliases) == "Open comedo"


@pytest.mark.slow
def test_a_dx_only_model_of_class_folders_with_an_eczema_class(tmp_path: Path) -> None:
    """Old code: 'eczema: sub-folder is not a diagnosis'."""
    _images(tmp_path / "classes")
    result = _train(tmp_path / "run", images=str(tmp_path / "classes"), kind="dx-only")
    model = load_checkpoint(result.checkpoint_dir)
    assert model.config.diagnoses == ("Psoriasis", "eczema", "melanoma")
    assert model.config.vocabulary == "own"
    (prediction,) = Predictor(result.checkpoint_dir).predict([tmp_path / "classes" / "eczema" / "eczema0.png"])
    assert {name for name, _ in prediction.diagnoses} == {"Psoriasis", "eczema", "melanoma"}
    assert "Psoriasis" in (result.checkpoint_dir / "README.md").read_text()


def _skincon(tmp_path: Path, rows: list[tuple[str, str]], bad: str | None = None) -> Path:
    """A table in SkinCon's layout (an unnamed index column as pandas writes it, ImageID, the exclusion
    flag, one 0/1 column per concept) with the diagnosis joined in as Fitzpatrick17k's ``label`` column."""
    concepts = {"eczema": ("Patch", "Scale"), "melanoma": ("Nodule", "Ulcer"), "psoriasis": ("Plaque", "Scale")}
    lines = [",".join(("", "ImageID", "Do not consider this image", *SKINCON, "label"))]
    for i, (image, dx) in enumerate(rows):
        flags = ["1" if c in concepts[dx] else "0" for c in SKINCON]
        if bad is not None and i == 3:
            flags[SKINCON.index(bad)] = "2"
        lines.append(",".join((str(i), image, "1" if i == 0 else "0", *flags, dx)))
    path = tmp_path / "skincon.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_dermx_model_on_skincon_style_concepts(tmp_path: Path) -> None:
    """Old code: "model kind 'dermx' needs a DermXDB folder"."""
    rows = _images(tmp_path / "images")
    table = _skincon(tmp_path, rows)
    collection = read_table(table, tmp_path / "images")
    assert collection.skipped == {"flagged 'Do not consider this image'": 1}
    assert len(collection.items) == len(rows) - 1
    shared = [c for c in SKINCON if characteristic_name(c) in vocab.CHARACTERISTICS]
    assert set(shared) == {"Papule", "Plaque", "Pustule", "Patch", "Nodule", "Scale", "Scar", "Telangiectasia",
                           "Cyst"}
    assert collection.characteristics[:len(shared)] == tuple(c for c in vocab.CHARACTERISTICS if c in shared)
    assert set(collection.characteristics[len(shared):]) == {"Bulla", "Ulcer", "Comedo"}
    melanoma = next(i for i in collection.items if i.key.startswith("melanoma"))
    assert {c for c, v in zip(collection.characteristics, melanoma.characteristics, strict=True) if v} == {
        "Nodule", "Ulcer"}
    result = _train(tmp_path / "run", labels=str(table), images=str(tmp_path / "images"), kind="dermx")
    config = json.loads((result.checkpoint_dir / "config.json").read_text())
    assert config["characteristics"] == list(collection.characteristics) and config["vocabulary"] == "own"
    assert config["training_data"]["n_train"] + config["training_data"]["n_val"] == len(rows) - 1
    assert config["training_data"]["left_out"] == {"flagged 'Do not consider this image'": 1}
    with pytest.raises(DermXDBError, match="expert maps"):
        _train(tmp_path / "plus", labels=str(table), images=str(tmp_path / "images"), kind="dermx+")


def test_a_bad_concept_value_names_file_line_and_column(tmp_path: Path) -> None:
    table = _skincon(tmp_path, _images(tmp_path / "images"), bad="Ulcer")
    with pytest.raises(DermXDBError, match=r"skincon.csv, line 5, column 'Ulcer': expected 0 or 1, got '2'"):
        read_table(table, tmp_path / "images")
