from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from dermx import vocab
from dermx.data import DermXDBError, ReferenceMaps, load_dermxdb
from dermx.geometry import InputSpec, scaled_size
from dermx.models import build_model
from dermx.train import DermXDataModule, TrainConfig, dermxdb_items, inner_split, read_folder, read_table
from dermx.train.datasets import ImageDataset


def _config(tiny_db: tuple[Path, Path], tmp_path: Path, **changes: object) -> TrainConfig:
    db, images = tiny_db
    return TrainConfig.of(data=str(db), images=str(images), kind="dermx+", input_size=(32, 32), pretrained=False,
                       cache_dir=str(tmp_path / "cache"), val_fraction=0.25, progress=False).replace(**changes)


def _module(config: TrainConfig) -> DermXDataModule:
    model = build_model("small", kind=config.model.kind, input_size=config.model.input_size, pretrained=False)
    return DermXDataModule(config, model.config)


def test_test_fold_is_never_used_and_patients_are_not_split(tiny_db: tuple[Path, Path], tmp_path: Path) -> None:
    data = _module(_config(tiny_db, tmp_path, fold=0))
    data.setup()
    train, val, test = (data.parts[p] for p in ("train", "val", "test"))
    assert len(train) + len(val) + len(test) == 24 and train and val and test
    fold = load_dermxdb(tiny_db[0]).fold(0)
    assert {i.key for i in test} == set(fold.test)
    assert not {i.key for i in train + val} & set(fold.test)
    assert not {i.group for i in train} & {i.group for i in val}
    assert data.fingerprint()["n_test"] == len(test)


def test_a_patient_on_both_sides_of_a_fold_is_refused(tiny_db: tuple[Path, Path], tmp_path: Path) -> None:
    """img000 and img001 are patient 0's, both in fold 0's test part; moving img001 to the training part
    splits the patient (an image overlap is refused the same way)."""
    db = tmp_path / "dermxdb"
    shutil.copytree(tiny_db[0], db)
    test, train = (db / "folds" / f"metadata_fold_0_{part}.csv" for part in ("test", "train"))
    lines = test.read_text().splitlines(keepends=True)
    (moved,) = [line for line in lines if ",img001.jpeg," in line]
    test.write_text("".join(line for line in lines if line is not moved))
    train.write_text(train.read_text() + moved)
    assert load_dermxdb(db).report.counts["patient in train and test"] == 1
    with pytest.raises(DermXDBError, match=r"1 patient\(s\) of the test part also have images in the training "
                                           r"data \(patient-0\)"):
        _module(_config((db, tiny_db[1]), tmp_path, fold=0)).setup()


def test_inner_split_needs_two_patients(tiny_db: tuple[Path, Path]) -> None:
    db = load_dermxdb(tiny_db[0], image_dir=tiny_db[1])
    items = dermxdb_items(db, ["img000", "img001"], vocab.CHARACTERISTICS)  # patient 0 only
    with pytest.raises(DermXDBError, match="2 patients"):
        inner_split(items, 0.2, 0)


def test_characteristic_labels_any_and_majority(tiny_db: tuple[Path, Path]) -> None:
    db = load_dermxdb(tiny_db[0], image_dir=tiny_db[1])
    (item,) = dermxdb_items(db, ["img003"], vocab.CHARACTERISTICS, "any")
    assert item.diagnosis == 3 and item.characteristics[3] == 1.0 and sum(item.characteristics) == 1.0
    (item,) = dermxdb_items(db, ["img003"], vocab.CHARACTERISTICS, "majority")
    assert sum(item.characteristics) == 1.0
    assert item.group == "patient-1"


@pytest.mark.parametrize(("policy", "expected"), [("pad", (40, 48)), ("crop", (48, 58)), ("squash", (48, 48))])
def test_resolution_policy_keeps_aspect_ratio(policy: str, expected: tuple[int, int]) -> None:
    assert scaled_size(40, 48, (48, 48), policy) == expected  # type: ignore[arg-type]


def test_maps_follow_the_image_geometry(tiny_db: tuple[Path, Path], tmp_path: Path) -> None:
    db = load_dermxdb(tiny_db[0], image_dir=tiny_db[1], cache_dir=tmp_path / "cache")
    items = dermxdb_items(db, db.stems(), vocab.CHARACTERISTICS)
    dataset = ImageDataset(items, InputSpec((48, 48), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), augment=True,
                           map_fn=ReferenceMaps(db, "mean", vocab.CHARACTERISTICS))
    torch.manual_seed(0)
    for index in range(6):
        sample = dataset[index]
        assert sample["image"].shape == (3, 48, 48) and sample["maps"].shape == (16, 48, 48)
        inside = sample["maps"][index % 6] >= 0.99  # all three raters agree: the coloured rectangle
        background = sample["image"].std(0) < 0.08  # grey pixels
        assert inside.sum() > 20
        assert (inside & background).float().mean() < 0.1


@pytest.mark.slow
def test_clear_errors_for_missing_folder_mismatched_images_and_empty_split(
        tiny_db: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(DermXDBError, match="image folder does not exist"):
        _module(_config(tiny_db, tmp_path, images=str(tmp_path / "nowhere"))).setup()
    with pytest.raises(DermXDBError, match="no image folder"):
        data = _module(_config(tiny_db, tmp_path))
        data.config.dataset.images = None
        data.setup()
    bad = tmp_path / "bad_images"
    bad.mkdir()
    for path in tiny_db[1].iterdir():
        Image.open(path).resize((20, 20)).save(bad / path.name)
    with pytest.raises(DermXDBError, match="annotations expect 48x40"):
        _module(_config(tiny_db, tmp_path, images=str(bad))).setup()
    empty = tmp_path / "empty_images"
    empty.mkdir()
    with pytest.raises(DermXDBError, match=r"found 0 of 24 images.*no image file for any"):
        _module(_config(tiny_db, tmp_path, images=str(empty))).setup()


def test_collections_for_dx_only(tmp_path: Path) -> None:
    for name in ("acne", "Viral_warts"):
        (tmp_path / "c" / name).mkdir(parents=True)
        Image.new("RGB", (10, 8)).save(tmp_path / "c" / name / "a.png")
    collection = read_folder(tmp_path / "c")
    assert collection.classes == vocab.DIAGNOSES  # DermXDB's names: its six stay the vocabulary
    assert sorted(i.diagnosis for i in collection.items) == [0, 4]
    (tmp_path / "labels.csv").write_text("path,diagnosis,patient_id\nc/acne/a.png,Psoriasis,7\n")
    (item,) = read_table(tmp_path / "labels.csv").items
    assert item.diagnosis == 2 and item.group == "patient-7" and item.path.is_file()
    (tmp_path / "c" / "eczema").mkdir()
    Image.new("RGB", (10, 8)).save(tmp_path / "c" / "eczema" / "a.png")
    assert read_folder(tmp_path / "c").classes == ("Acne", "Viral warts", "eczema")
