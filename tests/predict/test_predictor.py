"""Predictor: probabilities, thresholds, maps on the model input, geometry back to the image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dermx.data import DermXDBError
from dermx.explain import CamEngine
from dermx.geometry import joint_transform, preprocess
from dermx.predict import Predictor
from predict.samples import INPUT_SIZE, encoded, photo, tiny_checkpoint

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_probabilities_ranking_threshold_and_kept_maps(predictor: Predictor) -> None:
    (result,) = predictor.predict([photo()])
    probabilities = [p for _, p in result.diagnoses]
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    assert probabilities == sorted(probabilities, reverse=True)
    assert [c.name for c in result.characteristics] == list(predictor.model.config.characteristics)
    assert all(c.present == (c.probability >= 0.5) for c in result.characteristics)
    assert list(result.maps) == [f"diagnosis:{result.diagnosis}"] + [f"characteristic:{n}" for n in result.present]
    for values in result.maps.values():
        assert values.shape == INPUT_SIZE and values.dtype == np.float32
        assert values.min() >= 0.0 and values.max() <= 1.0
    assert result.maps[f"diagnosis:{result.diagnosis}"].max() == pytest.approx(1.0, abs=1e-3)  # not empty
    assert result.original_map(f"diagnosis:{result.diagnosis}").shape == (72, 96)
    document = json.loads(json.dumps(result.to_dict()))
    assert document["image_size"] == [72, 96] and document["diagnosis"] == result.diagnosis


@pytest.mark.slow
def test_threshold_decides_presence(checkpoint: Path) -> None:
    low, high = Predictor(checkpoint, threshold=0.01), Predictor(checkpoint, threshold=0.99)
    (everything,), (nothing,) = low.predict([photo()]), high.predict([photo()])
    assert all(c.present for c in everything.characteristics) and len(everything.maps) == 17
    assert not any(c.present for c in nothing.characteristics) and len(nothing.maps) == 1
    with pytest.raises(ValueError, match="threshold"):
        Predictor(checkpoint, threshold=1.5)


def test_maps_are_the_engines_on_the_preprocessed_input(predictor: Predictor) -> None:
    image = photo(120, 50)
    (result,) = predictor.predict([image])
    tensor, _ = preprocess(image, INPUT_SIZE, joint_transform(INPUT_SIZE, MEAN, STD, augment=False))
    engine = CamEngine(predictor.model, "gradcam")(tensor[None])
    for label, values in result.maps.items():
        expected = engine.maps[0, engine.labels.index(label)].numpy()
        np.testing.assert_allclose(values, expected, atol=1e-5)
    probabilities = torch.softmax(engine.logits["diagnosis"][0], 0)
    assert dict(result.diagnoses)["Psoriasis"] == pytest.approx(float(probabilities[2]), abs=1e-6)


@pytest.mark.parametrize("policy", ["pad", "crop", "squash"])
def test_geometry_goes_back_to_the_original_image(policy: str) -> None:
    image = photo(150, 60)
    tensor, placement = preprocess(image, INPUT_SIZE, joint_transform(INPUT_SIZE, MEAN, STD, augment=False),
                                   policy)  # type: ignore[arg-type]
    assert tensor.shape == (3, *INPUT_SIZE)
    red = tensor[0] * STD[0] + MEAN[0]  # the input's red channel, in [0, 1]; padding is (0 - mean)/std
    back = placement.restore(red).numpy()
    assert back.shape == (60, 150)
    truth = np.asarray(image, dtype=np.float32)[..., 0] / 255
    seen = back > 0 if policy == "crop" else np.ones_like(back, dtype=bool)
    assert np.corrcoef(back[seen], truth[seen])[0, 1] > 0.95
    if policy == "pad":
        top, left, height, width = placement.inside
        assert (left, width) == (0, 64) and height == round(60 * 64 / 150) and top == (64 - height) // 2


@pytest.mark.slow
def test_batches_and_single_images_agree(checkpoint: Path) -> None:
    images = [photo(seed=s) for s in range(3)]
    together = Predictor(checkpoint, batch_size=3).predict(images)
    alone = [Predictor(checkpoint, batch_size=1).predict([i])[0] for i in images]
    for a, b in zip(together, alone, strict=True):
        assert [n for n, _ in a.diagnoses] == [n for n, _ in b.diagnoses]
        np.testing.assert_allclose([p for _, p in a.diagnoses], [p for _, p in b.diagnoses], atol=1e-5)
        assert list(a.maps) == list(b.maps)


def _with_orientation(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(image, "PNG", exif=exif)


@pytest.mark.parametrize(("fmt", "mode"), [("JPEG", "L"), ("JPEG", "CMYK"), ("PNG", "RGBA"), ("PNG", "P"),
                                           ("WEBP", "RGB"), ("TIFF", "CMYK"), ("TIFF", "RGBA")])
def test_formats_and_modes(predictor: Predictor, tmp_path: Path, fmt: str, mode: str) -> None:
    path = tmp_path / f"image.{fmt.lower()}"
    photo().convert(mode).save(path, format=fmt)
    (result,) = predictor.predict([path])
    assert result.source == str(path) and result.original_size == (72, 96)


def test_exif_orientation_is_applied(predictor: Predictor) -> None:
    image = photo(96, 72)
    rotated = predictor.predict([_with_orientation(image, 6)])[0]  # stored landscape, shown portrait
    upright = predictor.predict([encoded(image.transpose(Image.Transpose.ROTATE_270), "PNG")])[0]
    assert rotated.original_size == upright.original_size == (96, 72)
    np.testing.assert_allclose([p for _, p in rotated.diagnoses], [p for _, p in upright.diagnoses], atol=1e-6)


@pytest.mark.parametrize(("fmt", "mode", "orientation"), [("JPEG", "RGB", 6), ("PNG", "RGB", 6), ("PNG", "P", 1),
                                                          ("PNG", "RGBA", 8), ("TIFF", "CMYK", 1)])
def test_large_images_decode_reduced_with_orientation_and_close_results(
        predictor: Predictor, fmt: str, mode: str, orientation: int) -> None:
    image = photo(48, 36, seed=4).resize((960, 720), Image.Resampling.BILINEAR).convert(mode)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(image, fmt, exif=exif.tobytes())
    full, reduced = predictor.prepare(data), predictor.prepare(data, min_side=160)
    turned = orientation in (6, 8)
    assert full.image.size == ((720, 960) if turned else (960, 720))
    # JPEG: the decoder's own 1/4 scale (DCT scaling); others: 1/4 box average after decoding
    assert reduced.image.size == ((180, 240) if turned else (240, 180))
    assert predictor.prepare(data, min_side=720).image.size == full.image.size  # nothing to gain: as is
    (a, b) = predictor.run([full, reduced])
    np.testing.assert_allclose([p for _, p in sorted(a.diagnoses)], [p for _, p in sorted(b.diagnoses)], atol=0.03)


def test_unreadable_files_are_named(predictor: Predictor, tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(encoded(photo(), "JPEG")[:300])
    with pytest.raises(DermXDBError, match=r"broken\.jpg"):
        predictor.predict([bad])
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(DermXDBError, match=r"notes\.txt"):
        predictor.predict([text])


@pytest.mark.slow
def test_diagnosis_only_model(tmp_path: Path) -> None:
    predictor = Predictor(tiny_checkpoint(tmp_path / "dx", kind="dx-only"))
    (result,) = predictor.predict([photo()])
    assert result.characteristics == [] and list(result.maps) == [f"diagnosis:{result.diagnosis}"]


@pytest.mark.slow
def test_resolution_defaults_to_the_training_policy(tmp_path: Path) -> None:
    from dermx.models import load_checkpoint, save_checkpoint

    model = load_checkpoint(tiny_checkpoint(tmp_path / "a"))
    model.config.resolution = "crop"
    directory = save_checkpoint(model, tmp_path / "b")
    assert Predictor(directory).spec.policy == "crop"
    assert Predictor(directory, resolution="squash").spec.policy == "squash"
    with pytest.raises(ValueError, match=r"unknown resolution policy 'stretch'"):
        Predictor(directory, resolution="stretch")  # type: ignore[arg-type]
