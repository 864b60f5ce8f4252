"""The one rendering of an explanation map, shared by ``dermx predict``, ``dermx explain``, the service
page and the report.

Colour: :data:`COLORMAP` (``viridis``: perceptually uniform, legible in greyscale, and none of its colours
is a skin or erythema tone) over the fixed range [0, 1], so the same colour means the same value in
every picture. Heat layer: each pixel coloured by its value and as opaque as its value, so weak evidence
stays see-through; :func:`blend` composites it on the image at :data:`OPACITY`.

:func:`map_figure` is the picture for people: the original beside the overlay, a colour bar, a title
(target and probability), each panel at the image's own size (integer-upscaled when the shorter side is
below :data:`MIN_SIDE` px, so the text stays legible). When the model input was padded (``Frame``), both
panels show the whole model input at the image's scale: the padding hatched, the image area outlined
with a dashed line, and the map drawn over the padding too (attention on padding is a shortcut).
"""

from __future__ import annotations

import base64
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from dermx.geometry import Placement

COLORMAP = "viridis"
OPACITY = 0.6
MIN_SIDE = 256
#: Grey of the padding (:func:`padded_canvas`) and of its hatching.
PADDING_GREY, HATCH_GREY = 200, 120
#: Pixels between two hatching lines of the padding.
HATCH_STEP = 8
#: :func:`map_figure` layout in pixels: left margin, gap between panels, colour bar width, right margin
#: (bar labels), title band, bottom margin.
LEFT, GAP, BAR, RIGHT, TITLE, BOTTOM = 16, 16, 18, 48, 44, 10

Box = tuple[int, int, int, int]


def heat_layer(values: np.ndarray) -> Image.Image:
    """An RGBA image of a ``(h, w)`` map in ``[0, 1]``: colour from :data:`COLORMAP`, alpha = value."""
    from matplotlib import colormaps

    clipped = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float32)), 0.0, 1.0)
    rgba = colormaps[COLORMAP](clipped, bytes=True)
    rgba[..., 3] = np.round(clipped * 255).astype(np.uint8)
    return Image.fromarray(rgba, "RGBA")


def blend(image: Image.Image, values: np.ndarray, opacity: float = OPACITY) -> Image.Image:
    """``image`` (RGB) with the heat layer of ``values`` composited at ``opacity`` (resized to fit)."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    layer = heat_layer(values)
    if layer.size != image.size:
        layer = layer.resize(image.size, Image.Resampling.BILINEAR)
    alpha = np.asarray(layer.getchannel("A"), dtype=np.float32) * opacity
    layer.putalpha(Image.fromarray(np.round(alpha).astype(np.uint8), "L"))
    return Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")


def colorbar_strip(width: int = 256, height: int = 12) -> Image.Image:
    """A horizontal strip of :data:`COLORMAP` from 0 (left) to 1 (right), for pages that draw their own
    colour bar (the service page)."""
    from matplotlib import colormaps

    row = colormaps[COLORMAP](np.linspace(0.0, 1.0, width), bytes=True)[:, :3]
    return Image.fromarray(np.repeat(row[None], height, axis=0), "RGB")


def encode(image: Image.Image, fmt: str = "PNG", quality: int = 75) -> bytes:
    """The bytes of ``image`` saved as ``fmt`` (``quality``: JPEG only)."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def data_url(image: Image.Image, fmt: str = "PNG", quality: int = 75) -> str:
    """A ``data:`` URL of ``image`` saved as ``fmt`` (PNG or JPEG at ``quality``)."""
    mime = {"PNG": "image/png", "JPEG": "image/jpeg"}[fmt]
    return f"data:{mime};base64,{base64.b64encode(encode(image, fmt, quality)).decode('ascii')}"


def target_filename(label: str) -> str:
    """The file name of a target's picture: ``"characteristic:Sun damage"`` → ``characteristic_Sun_damage.png``."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", label).strip("_") + ".png"


def map_title(label: str, probability: float | None, method: str | None = None, *, abstains: bool = False) -> str:
    """``"characteristic: Plaque · p = 0.87 · Grad-CAM"`` (parts left out when unknown). When the model
    ``abstains``, a diagnosis map is not titled as a diagnosis: ``"class Psoriasis (no single diagnosis)
    · p = 0.31 · Grad-CAM"``."""
    head, _, name = label.rpartition(":")
    parts = [f"class {name} (no single diagnosis)" if abstains and head == "diagnosis"
             else f"{head}: {name}" if head else name]
    if probability is not None and math.isfinite(probability):
        parts.append(f"p = {probability:.2f}")
    if method:
        parts.append(method)
    return " · ".join(parts)


@dataclass(frozen=True)
class Frame:
    """Where the image sits in a padded model input: ``input_size`` ``(H, W)`` and the ``inside`` box
    ``(top, left, h, w)`` of input pixels showing the image."""

    input_size: tuple[int, int]
    inside: Box

    @property
    def padded(self) -> bool:
        return self.inside != (0, 0, *self.input_size)

    def canvas(self, image_size: tuple[int, int]) -> tuple[tuple[int, int], Box]:
        """``((H', W'), box)``: the model input at the scale of an image of ``image_size`` ``(h, w)``, and
        where the image lies in it."""
        top, left, height, width = self.inside
        sy, sx = image_size[0] / height, image_size[1] / width
        size = (round(self.input_size[0] * sy), round(self.input_size[1] * sx))
        return size, (round(top * sy), round(left * sx), *image_size)


def frame_of(placement: Placement, input_size: Sequence[int]) -> Frame | None:
    """The :class:`Frame` to draw an image's maps in: where the image sits in a padded model input;
    ``None`` when nothing was padded or a crop cut the image (maps are then put back on the image)."""
    frame = Frame(tuple(input_size), placement.inside)  # type: ignore[arg-type]
    return frame if frame.padded and not placement.cropped else None


def padded_canvas(image: Image.Image, frame: Frame) -> tuple[Image.Image, Box]:
    """The whole model input at the scale of ``image`` (:meth:`Frame.canvas`): the image where it lies and
    the padding grey with diagonal hatching; and the image's box ``(top, left, h, w)`` in it. The one
    picture of padding, in ``predict``/``explain`` figures and on the service page."""
    size, box = frame.canvas((image.height, image.width))
    canvas = Image.fromarray(hatching(size))
    canvas.paste(image.convert("RGB"), (box[1], box[0]))
    return canvas, box


def hatching(size: tuple[int, int]) -> np.ndarray:
    """``(h, w, 3)`` uint8: the picture of padding, grey with diagonal lines every :data:`HATCH_STEP` px."""
    rows, cols = np.indices(size)
    pixels = np.full((*size, 3), PADDING_GREY, np.uint8)
    pixels[(rows + cols) % HATCH_STEP == 0] = HATCH_GREY
    return pixels


def hatch_outside(picture: Image.Image, box: Box) -> Image.Image:
    """``picture`` with everything outside ``box`` ``(top, left, h, w)`` (its padding) drawn as
    :func:`hatching`."""
    pixels = hatching((picture.height, picture.width))
    top, left, height, width = box
    pixels[top:top + height, left:left + width] = np.asarray(picture.convert("RGB"))[top:top + height,
                                                                                   left:left + width]
    return Image.fromarray(pixels)


def _panels(image: Image.Image, values: np.ndarray, frame: Frame | None
            ) -> tuple[Image.Image, Image.Image, Box | None]:
    """(original panel, overlay panel, image box within the panels or ``None`` when not padded)."""
    if frame is None or not frame.padded:
        return image, blend(image, values), None
    canvas, box = padded_canvas(image, frame)
    return canvas, blend(canvas, values), box


def map_figure(image: Image.Image, values: np.ndarray, title: str, frame: Frame | None = None,
               min_side: int = MIN_SIDE) -> Image.Image:
    """The picture of one map (module docstring): original | overlay | colour bar, titled ``title``.

    ``values``: the map in [0, 1], on the model input when ``frame`` is padded, else on any grid of the
    image's aspect (it is resized to the image).
    """
    from dermx.plotting import pyplot

    plt = pyplot()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.patches import Rectangle

    original, overlay, box = _panels(image.convert("RGB"), values, frame)
    scale = max(1, math.ceil(min_side / min(original.size)))
    width, height = original.width * scale, original.height * scale
    fig_w, fig_h = LEFT + 2 * width + 2 * GAP + BAR + RIGHT, TITLE + height + BOTTOM
    dpi = 100
    fig = plt.figure(figsize=(fig_w / dpi, fig_h / dpi), dpi=dpi)
    y = BOTTOM / fig_h
    axes = [fig.add_axes((x / fig_w, y, width / fig_w, height / fig_h)) for x in (LEFT, LEFT + width + GAP)]
    for ax, panel in zip(axes, (original, overlay), strict=True):
        ax.imshow(np.asarray(panel), interpolation="nearest")
        ax.set_axis_off()
        if box is not None:
            _mark_padding(ax, box, Rectangle)
    cax = fig.add_axes(((LEFT + 2 * width + 2 * GAP) / fig_w, y, BAR / fig_w, height / fig_h))
    colorbar(fig, cax=cax)
    fig.text(0.5, 1 - 6 / fig_h, title, ha="center", va="top", fontsize=11)
    note = "left: image · right: map" + (" · hatched: padding added to fit the model input" if box else "")
    fig.text(0.5, 1 - 26 / fig_h, note, ha="center", va="top", fontsize=7, color="#555")
    canvas = fig.canvas
    assert isinstance(canvas, FigureCanvasAgg)  # the backend chosen above
    canvas.draw()
    rendered = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    plt.close(fig)
    return rendered


def colorbar(fig: Any, **where: Any) -> None:
    """The colour bar of :data:`COLORMAP` over [0, 1], labelled "map value"; ``where``: matplotlib's
    ``cax=`` or ``ax=`` (and ``shrink=``, ``pad=``)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    bar = fig.colorbar(ScalarMappable(Normalize(0, 1), COLORMAP), **where)
    bar.set_label("map value (0 = none, 1 = strongest)", fontsize=8)
    bar.ax.tick_params(labelsize=7)


def _mark_padding(ax: Any, box: Box, rectangle: Any) -> None:
    """Outline the image area ``box`` (dashed) on a panel (the padding is hatched in its pixels)."""
    top, left, height, width = box
    ax.add_patch(rectangle((left - 0.5, top - 0.5), width, height, fill=False, edgecolor="white",
                           linestyle="--", linewidth=1.2))
