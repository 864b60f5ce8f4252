"""The one map rendering: sizes, colour bar, title, padding, file names."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image

from dermx.explain.overlay import (
    BAR,
    BOTTOM,
    COLORMAP,
    GAP,
    LEFT,
    RIGHT,
    TITLE,
    Frame,
    blend,
    heat_layer,
    map_figure,
    map_title,
    target_filename,
)


def _photo(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(90, 200, (height, width, 3), dtype=np.uint8))


def _hot_corner(height: int, width: int) -> np.ndarray:
    values = np.zeros((height, width), np.float32)
    values[: height // 3, : width // 3] = 1.0
    return values


def test_figure_panels_are_the_image_at_its_own_size_with_a_colour_bar() -> None:
    image = _photo(300, 260)
    figure = map_figure(image, _hot_corner(8, 8), "diagnosis: Psoriasis · p = 0.87")
    assert figure.size == (LEFT + 2 * 300 + 2 * GAP + BAR + RIGHT, TITLE + 260 + BOTTOM)
    pixels = np.asarray(figure).astype(int)
    left = pixels[TITLE:TITLE + 260, LEFT:LEFT + 300]
    assert np.abs(left[2:-2, 2:-2] - np.asarray(image)[2:-2, 2:-2]).mean() < 3  # the original, unchanged
    right = pixels[TITLE:TITLE + 260, LEFT + 300 + GAP:LEFT + 600 + GAP]
    viridis_top = np.asarray(colormaps[COLORMAP](1.0, bytes=True)[:3], dtype=int)
    corner, rest = right[10:80, 10:90].mean(axis=(0, 1)), right[-80:, -80:].mean(axis=(0, 1))
    assert np.abs(corner - viridis_top).sum() < np.abs(np.asarray(image).mean(axis=(0, 1)) - viridis_top).sum()
    assert np.abs(rest - np.asarray(image)[-80:, -80:].mean(axis=(0, 1))).max() < 4  # cold map: see-through
    bar_x = LEFT + 600 + 2 * GAP + BAR // 2
    top, bottom = pixels[TITLE + 3, bar_x], pixels[TITLE + 256, bar_x]
    assert np.abs(top - viridis_top).max() < 20
    assert np.abs(bottom - np.asarray(colormaps[COLORMAP](0.0, bytes=True)[:3])).max() < 20
    title_band = pixels[:TITLE - 20, LEFT:LEFT + 600]
    assert (title_band.sum(axis=2) < 200).sum() > 50  # dark title text is drawn


def test_small_images_are_upscaled_by_an_integer_factor() -> None:
    figure = map_figure(_photo(64, 48), np.zeros((48, 64)), "x")
    assert figure.height == TITLE + 48 * 6 + BOTTOM  # ceil(256 / 48) = 6


def test_padding_is_shown_hatched_around_the_image() -> None:
    image = _photo(300, 150)  # letterboxed into a 64 × 64 input: rows 16..47 show the image
    frame = Frame((64, 64), (16, 0, 32, 64))
    assert frame.padded and frame.canvas((150, 300)) == ((300, 300), (75, 0, 150, 300))
    figure = np.asarray(map_figure(image, np.zeros((64, 64)), "x", frame)).astype(int)
    assert figure.shape[0] == TITLE + 300 + BOTTOM
    band = figure[TITLE + 5:TITLE + 70, LEFT + 5:LEFT + 295]  # the top padding strip
    assert len(np.unique(band.reshape(-1, 3), axis=0)) >= 2  # hatched, not flat
    assert not Frame((64, 64), (0, 0, 64, 64)).padded


def test_titles_and_file_names() -> None:
    title = map_title("characteristic:Sun damage", 0.8712, "Grad-CAM")
    assert title == "characteristic: Sun damage · p = 0.87 · Grad-CAM"
    assert map_title("7", None) == "7"
    assert map_title("diagnosis:Psoriasis", 0.31, "Grad-CAM", abstains=True) == (
        "class Psoriasis (no single diagnosis) · p = 0.31 · Grad-CAM")
    assert map_title("characteristic:Scale", 0.5, abstains=True) == "characteristic: Scale · p = 0.50"
    assert target_filename("characteristic:Sun damage") == "characteristic_Sun_damage.png"


def test_heat_layer_alpha_is_the_value_and_blend_checks_opacity() -> None:
    layer = heat_layer(np.array([[0.0, 0.5, 1.0]]))
    assert list(np.asarray(layer)[0, :, 3]) == [0, 128, 255]
    with pytest.raises(ValueError):
        blend(_photo(3, 1), np.zeros((1, 3)), opacity=1.5)
