"""One image through training, prediction and explanation preprocessing, and maps back through the
benchmark's inverse: the stages agree pixel for pixel because they share :mod:`dermx.geometry`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dermx.explain.images import load_input
from dermx.geometry import InputSpec, Placement, scaled_size, to_native
from dermx.models import build_model, save_checkpoint
from dermx.predict import Predictor
from dermx.train.datasets import ImageDataset, Item

INPUT = (40, 48)
POLICIES = ("pad", "crop", "squash")


@pytest.fixture(scope="module")
def image_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("geometry") / "odd.png"
    Image.fromarray(rng.integers(0, 256, (37, 71, 3), dtype=np.uint8)).save(path)  # odd, wide
    return path


def _coordinates(size: tuple[int, int]) -> torch.Tensor:
    """Two planes on the resized grid: (row + 1) / h' and (col + 1) / w', never 0 on the image."""
    rows = (torch.arange(size[0], dtype=torch.float32)[:, None] + 1) / size[0]
    cols = (torch.arange(size[1], dtype=torch.float32)[None, :] + 1) / size[1]
    return torch.stack([rows.expand(size), cols.expand(size)])


@pytest.mark.slow
@pytest.mark.parametrize("policy", POLICIES)
def test_train_predict_and_explain_feed_the_model_the_same_pixels(image_file: Path, policy: str,
                                                                   tmp_path: Path) -> None:
    model = build_model("small", kind="dermx", input_size=INPUT)
    model.config.resolution = policy  # type: ignore[assignment]
    train = ImageDataset([Item("odd", image_file, 0, "odd", (0.0,) * 16)],
                         model.config.input_spec)[0]["image"]
    predictor = Predictor(save_checkpoint(model, tmp_path / "ckpt"))
    predicted = predictor.prepare(image_file).tensor
    explained = replace(model.config.input_spec, policy=policy).normalise([load_input(image_file, INPUT, policy)])[0]
    assert train.shape == predicted.shape == explained.shape == (3, *INPUT)
    torch.testing.assert_close(predicted, train, rtol=0, atol=1e-6)
    torch.testing.assert_close(explained, train, rtol=0, atol=1e-6)


@pytest.mark.parametrize("policy", POLICIES)
def test_the_inverse_puts_every_input_pixel_back_where_it_came_from(image_file: Path, policy: str) -> None:
    """The oracle: coordinate planes ride through the training transform as masks (as the expert maps
    do); the benchmark's inverse must bring each one back to the pixel it came from."""
    with Image.open(image_file) as image:
        native = (image.height, image.width)
    resized = scaled_size(*native, INPUT, policy)  # type: ignore[arg-type]
    coords = _coordinates(resized)
    sample = ImageDataset([Item("odd", image_file, 0, "odd")], InputSpec(INPUT, (0, 0, 0), (1, 1, 1), policy),  # type: ignore[arg-type]
                          map_fn=lambda _key, _size: coords)[0]
    on_input = sample["maps"]
    placement = Placement.of(native, INPUT, policy)  # type: ignore[arg-type]
    top, left, height, width = placement.inside
    seen = on_input[0] > 0
    assert seen.sum() == height * width and seen[top:top + height, left:left + width].all()
    back = placement.restore(on_input, resized)  # on the resized grid: no interpolation
    v_top, v_left, _, _ = placement.visible
    window = (slice(None), slice(v_top, v_top + height), slice(v_left, v_left + width))
    torch.testing.assert_close(back[window], coords[window], rtol=0, atol=0)
    outside = torch.ones(resized, dtype=torch.bool)
    outside[window[1:]] = False
    assert not back[:, outside].any()  # cropped-away pixels: the model never saw them
    # the benchmark's entry point is the same inverse, at the native size
    torch.testing.assert_close(to_native(on_input, native, INPUT, policy),  # type: ignore[arg-type]
                               placement.restore(on_input), rtol=0, atol=0)


def test_placement_boxes_by_hand() -> None:
    # 37x71 into 40x48: pad scales by 48/71 → 25x48, centred with 7 rows above; crop by 40/37 → 40x77,
    # columns 14..61 kept (offset round(29/2) = 14, Python's round half to even)
    assert Placement.of((37, 71), INPUT, "pad") == Placement((37, 71), (25, 48), (7, 0, 25, 48), (0, 0, 25, 48))
    assert Placement.of((37, 71), INPUT, "crop") == Placement((37, 71), (40, 77), (0, 0, 40, 48), (0, 14, 40, 48))
    assert Placement.of((37, 71), INPUT, "squash") == Placement((37, 71), INPUT, (0, 0, *INPUT), (0, 0, *INPUT))
    assert [Placement.of((37, 71), INPUT, p).cropped for p in POLICIES] == [False, True, False]
