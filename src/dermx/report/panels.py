"""The map panels of the report's example grids and drill-downs: small pictures laid out in HTML.

Each panel is one picture of :data:`PANEL` px on its longer side (the size it is shown at), a map drawn
over the image as everywhere in dermx (:func:`dermx.explain.overlay.blend`: ``viridis`` on a fixed 0–1
scale, each pixel as opaque as its value), saved as JPEG (quality :data:`QUALITY`); titles are HTML
text, not pixels, and the colour bar is one picture for the whole report (:func:`panel_style`, a CSS
background every row of panels shows). This keeps a report with dozens of drill-downs a few MB and
quick to write. Outlines: the watermark box (synthetic data) in dashed cyan, each rater's outline in
that rater's colour (:data:`RATER_COLOURS`).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from dermx import vocab
from dermx.explain.overlay import blend, colorbar, data_url, hatch_outside
from dermx.runs.examples import INSIDE, rater_masks

#: Longer side of a panel in pixels.
PANEL = 144
#: JPEG quality of the panels.
QUALITY = 85
#: Height in pixels of a panel caption: three lines of 11 px text at line height 1.25 (a wrapped name keeps
#: the probability on the first line in view); the colour bar starts as low, level with the pictures.
CAPTION = 42
#: Outline colour of the k-th rater of an image (the first pass in rater order); the watermark is cyan.
RATER_COLOURS: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (255, 140, 0), (255, 255, 255), (240, 50, 230), (0, 0, 0), (170, 110, 40), (128, 128, 128),
    (250, 190, 212))
WATERMARK_COLOUR = (0, 255, 255)


@dataclass(frozen=True)
class Panel:
    """One cell of a grid: a picture (``None``: text only) and its title (may hold a line break)."""

    picture: Image.Image | None
    title: str


def _fit(image: np.ndarray) -> Image.Image:
    """``image`` (h, w, 3) uint8 resized (bilinear) to :data:`PANEL` px on its longer side."""
    picture = Image.fromarray(image)
    scale = PANEL / max(picture.size)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    return picture.resize(size, Image.Resampling.BILINEAR)


def outline(picture: Image.Image, mask: np.ndarray, colour: tuple[int, int, int], dashed: bool = False) -> Image.Image:
    """``picture`` with the border of ``mask`` (any size; nearest-resized to the picture) drawn two pixels
    wide in ``colour`` (dashed: in runs of four pixels)."""
    grid = np.asarray(Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255).resize(picture.size,
                                                                                    Image.Resampling.NEAREST)) > 0
    inner = grid.copy()
    for _ in range(2):  # erode twice (4-neighbourhood; outside the picture counts as outside the mask)
        padded = np.pad(inner, 1)
        inner = inner & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    edge = grid & ~inner
    if dashed:
        rows, cols = np.indices(edge.shape)
        edge &= ((rows + cols) // 4) % 2 == 0
    pixels = np.asarray(picture.convert("RGB")).copy()
    pixels[edge] = colour
    return Image.fromarray(pixels)


def panel(image: np.ndarray, values: np.ndarray | None = None, watermark: np.ndarray | None = None,
          outlines: Sequence[np.ndarray] = (), inside: Sequence[int] | None = None) -> Image.Image:
    """A panel picture: ``values`` over ``image`` (the image alone when ``None``), the k-th mask of
    ``outlines`` outlined in ``RATER_COLOURS[k]``, the watermark in dashed cyan; outside ``inside`` (the
    image's box ``(top, left, h, w)`` in ``image``), the padding of the model input, hatched."""
    picture = _fit(image)
    if inside is not None:
        sy, sx = picture.height / image.shape[0], picture.width / image.shape[1]
        top, left, height, width = (int(v) for v in inside)
        picture = hatch_outside(picture, (round(top * sy), round(left * sx), round(height * sy), round(width * sx)))
    if values is not None:
        picture = blend(picture, np.asarray(values, dtype=np.float32))
    for k, mask in enumerate(outlines):
        if mask.any():
            picture = outline(picture, mask, RATER_COLOURS[k % len(RATER_COLOURS)])
    if watermark is not None and watermark.any():
        picture = outline(picture, watermark, WATERMARK_COLOUR, dashed=True)
    return picture


def colorbar_png() -> bytes:
    """The colour bar shown beside every row of panels (:func:`dermx.explain.overlay.colorbar`)."""
    from dermx.plotting import pyplot

    plt = pyplot()

    from dermx.report.figures import png

    fig = plt.figure(figsize=(0.9, PANEL / 90))
    cax = fig.add_axes((0.06, 0.04, 0.16, 0.92))
    colorbar(fig, cax=cax)
    cax.set_ylabel("")  # beside one panel a rotated label is unreadably small: the ticks say it
    cax.set_yticks([0.0, 0.5, 1.0], ["0 none", "0.5", "1 most"], fontsize=8)
    return png(fig, dpi=90, tight=False)


def panel_style() -> str:
    """CSS of the panel grids, with the colour bar inlined once as the background of ``.cbar``."""
    bar = base64.b64encode(colorbar_png()).decode("ascii")
    return (f".panels{{margin:8px 0}}.prow{{display:flex;gap:6px;align-items:flex-start;margin-bottom:6px}}"
            f".panels figure{{margin:0;width:{PANEL}px;flex:none}}.panels figure img{{width:{PANEL}px;border:0;"
            f"margin:0;display:block}}.panels figcaption{{font-size:11px;line-height:1.25;height:{CAPTION}px;"
            f"overflow:hidden;white-space:pre-line}}.panels .text{{font-size:12px;padding-top:{CAPTION}px}}"
            f".cbar{{width:81px;height:{PANEL}px;margin-top:{CAPTION}px;flex:none;background:url(data:image/png;base64,"
            f"{bar}) no-repeat left top/auto 100%}}.swatch{{display:inline-block;width:0.9em;height:0.9em;"
            f"border:1px solid #888;vertical-align:-1px;margin:0 3px 0 8px}}")


def grid_html(rows: Sequence[Sequence[Panel]], label: str) -> str:
    """The rows of panels as HTML (pictures inlined as JPEG), a colour bar closing each row that shows a
    map; ``label`` names the grid for screen readers and tests."""
    parts = [f"<div class='panels' role='img' aria-label='{html.escape(label, quote=True)}'>"]
    for row in rows:
        cells = []
        for cell in row:
            title = f"<figcaption>{html.escape(cell.title)}</figcaption>"
            if cell.picture is None:
                cells.append(f"<figure>{title}</figure>")
            else:
                cells.append(f"<figure>{title}<img alt='{html.escape(cell.title, quote=True)}' "
                             f"src='{data_url(cell.picture.convert('RGB'), 'JPEG', QUALITY)}'></figure>")
        parts.append(f"<div class='prow'>{''.join(cells)}<i class='cbar' title='map value'></i></div>")
    return "".join(parts) + "</div>"


def top_characteristic(examples: dict[str, np.ndarray], i: int) -> int | None:
    """Index of the characteristic the experts outlined most (largest fused area) in example ``i``."""
    present = np.flatnonzero(examples["present"][i])
    if not len(present):
        return None
    areas = examples["fused"][i][present].astype(np.float32).sum(axis=(1, 2))
    return int(present[int(areas.argmax())])


def _dx_title(examples: dict[str, np.ndarray], model: str, i: int) -> str:
    predicted, reference = str(examples[f"predicted:{model}"][i]), str(examples["reference"][i])
    p = float(examples[f"dx_prob:{model}"][i].max())
    return f"{model}: {'✓' if predicted == reference else '✗'} p = {p:.2f}\n{predicted}"


def _char_title(examples: dict[str, np.ndarray], model: str, i: int, c: int) -> str:
    p = float(examples[f"char_prob:{model}"][i][c])
    return f"{model}: " + ("not modelled" if math.isnan(p) else f"p = {p:.2f}") + f"\n{vocab.CHARACTERISTICS[c]}"


def _drawer(examples: dict[str, np.ndarray], i: int) -> Callable[..., Image.Image]:
    """:func:`panel` for example ``i``: its image, watermark and (runs that stored it) padding box."""
    inside = examples[INSIDE][i] if INSIDE in examples else None

    def draw(values: np.ndarray | None = None, outlines: Sequence[np.ndarray] = ()) -> Image.Image:
        return panel(examples["image"][i], values, examples["watermark"][i], outlines, inside)

    return draw


def example_grid(examples: dict[str, np.ndarray], models: list[str], rows: list[int]) -> list[list[Panel]]:
    """One row per example: the image (stem, why it was chosen), the experts' union, each model's
    diagnosis map (✓/✗, probability), then the characteristic the experts outlined most: their fused
    map of it beside each model's map of it (probability). A caption puts the probability on its first line,
    the class or characteristic after it (three lines fit: a long name may wrap, the probability stays)."""
    grid = []
    for i in rows:
        draw = _drawer(examples, i)
        row = [Panel(draw(), f"{examples['stems'][i]}\n{examples['reasons'][i]}"),
               Panel(draw(examples["union"][i]), "experts: union")]
        row += [Panel(draw(examples[f"map:{m}"][i]), _dx_title(examples, m, i)) for m in models]
        c = top_characteristic(examples, i)
        if c is None:
            row.append(Panel(None, "no characteristic outlined"))
        else:
            row.append(Panel(draw(examples["fused"][i][c]), f"experts: {vocab.CHARACTERISTICS[c]}"))
            row += [Panel(draw(examples[f"chars:{m}"][i][c]), _char_title(examples, m, i, c))
                    for m in models]
        grid.append(row)
    return grid


def drilldown(examples: dict[str, np.ndarray], models: list[str], i: int) -> list[list[Panel]]:
    """Every map of example ``i``. First row: the image, every rater's outline (their union over the
    characteristics), the experts' union and each model's diagnosis map. Then one row per characteristic
    the experts outlined or a model found (p ≥ 0.5): each rater's outline of it, the experts' fused map
    and each model's map."""
    present = set(np.flatnonzero(examples["present"][i]).tolist())
    for model in models:
        present |= set(np.flatnonzero(np.nan_to_num(examples[f"char_prob:{model}"][i]) >= 0.5).tolist())
    draw = _drawer(examples, i)
    names, masks = rater_masks(examples, i)
    first = [Panel(draw(), f"{examples['stems'][i]}\n{examples['reference'][i]}"),
             Panel(draw(None, list(np.any(masks, axis=1))),
                   f"{len(names)} raters' outlines\n(all characteristics)"),
             Panel(draw(examples["union"][i]), "experts: union")]
    first += [Panel(draw(examples[f"map:{m}"][i]), _dx_title(examples, m, i)) for m in models]
    grid = [first]
    for c in sorted(present):
        outlined = "outlined" if examples["present"][i][c] else "not outlined"
        title = f"{vocab.CHARACTERISTICS[c]}\n(experts: {outlined})"
        row = [Panel(draw(None, list(masks[:, c])), title),
               Panel(draw(examples["fused"][i][c]), "experts: fused")]
        row += [Panel(draw(examples[f"chars:{m}"][i][c]), _char_title(examples, m, i, c))
                for m in models]
        grid.append(row)
    return grid


def rater_legend(examples: dict[str, np.ndarray], i: int) -> str:
    """The outline colour of each rater of example ``i`` as HTML."""
    names, _ = rater_masks(examples, i)
    swatches = "".join(f"<span class='swatch' style='background:rgb{RATER_COLOURS[k % len(RATER_COLOURS)]}'></span>"
                       f"{html.escape(name)}" for k, name in enumerate(names))
    return f"Raters' outlines:{swatches}."

