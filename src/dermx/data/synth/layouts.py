"""Real lesion layouts: take lesion geometry from the real DermXDB polygons, render synthetic skin.

For each real image with a reference diagnosis, the first-pass rating with the most outlined shapes
(ties: lowest rater number) gives the layout: its polygons of the 16 characteristics, rescaled from
the annotated size to the synthetic size (x · w/W, y · h/H), with the style and attributes the
diagnosis' profile gives that characteristic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dermx import vocab
from dermx.data.dataset import load_dermxdb
from dermx.data.synth.geometry import Lesion
from dermx.data.synth.profiles import style_for


@dataclass(frozen=True)
class Layout:
    stem: str
    diagnosis: str
    lesions: tuple[Lesion, ...]


def load_layouts(root: Path, size: tuple[int, int]) -> list[Layout]:
    """Layouts of the real images in ``root`` (a DermXDB folder), sorted by stem."""
    db = load_dermxdb(root, check_mask_sizes=False)
    height, width = size
    layouts = []
    for stem in db.stems():
        ratings = db.ratings_of(stem)
        if not ratings:
            continue
        diagnosis = db.images[stem].diagnosis
        if diagnosis not in vocab.DIAGNOSES:
            continue
        best = max(ratings, key=lambda r: len(r.shapes))
        factor = np.array([width / best.width, height / best.height])
        lesions = []
        for shape in best.shapes:
            if shape.name not in vocab.CHARACTERISTICS:
                continue
            style, attributes = style_for(diagnosis, shape.name)
            rings = tuple(np.asarray(ring, dtype=np.float64) * factor for ring in shape.rings)
            lesions.append(Lesion(shape.name, rings, style, attributes))
        layouts.append(Layout(stem, diagnosis, tuple(lesions)))
    if not layouts:
        raise ValueError(f"{root}: no rated image with a reference diagnosis to take layouts from")
    return layouts
