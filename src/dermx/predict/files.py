"""Files for ``dermx predict``: which inputs to read, and the per-image outputs it writes.

Outputs of one image go to ``OUT/<image stem>/`` (the stem keeps the subfolder of a searched folder):
``<target>.png`` for each map (e.g. ``diagnosis_Psoriasis.png``) and one ``maps.npz``, written by the
writer ``dermx explain`` uses too (:func:`dermx.explain.outputs.write_image_outputs`: same layout, same
keys).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dermx.data.images import IMAGE_SUFFIXES
from dermx.explain.outputs import write_image_outputs
from dermx.predict.result import Prediction


@dataclass(frozen=True)
class Inputs:
    """Image files to predict, each with its output name, and the files passed over with why."""

    images: list[tuple[Path, str]]
    skipped: list[tuple[str, str]]


def collect(paths: list[Path]) -> Inputs:
    """Expand folders (recursively) into image files; everything not taken is in ``skipped``.

    A folder contributes files with an image suffix (others are skipped as "not an image file
    type"); a file named explicitly is always tried. Output names are relative to the folder given,
    made unique with ``-2``, ``-3``, ... when two inputs would share one.
    """
    images: list[tuple[Path, str]] = []
    skipped: list[tuple[str, str]] = []
    for path in paths:
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file()):
                if found.suffix.lower() in IMAGE_SUFFIXES:
                    images.append((found, str(found.relative_to(path))))
                else:
                    skipped.append((str(found), f"not an image file type ({found.suffix or 'no suffix'})"))
        elif path.is_file():
            images.append((path, path.name))
        else:
            skipped.append((str(path), "no such file or folder"))
    return Inputs(_unique(images), skipped)


def _unique(images: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    seen: set[str] = set()
    named = []
    for path, name in images:
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            candidate = f"{name}-{n}"
        seen.add(candidate)
        named.append((path, candidate))
    return named


def output_dir(out: Path, name: str) -> Path:
    """``OUT/<image stem>``: the output name without its image suffix (``sub/b.png`` → ``OUT/sub/b``)."""
    path = Path(name)
    return out / (path.with_suffix("") if path.suffix.lower() in IMAGE_SUFFIXES else path)


def write_outputs(prediction: Prediction, image: Image.Image, directory: Path) -> list[str]:
    """Write the map pictures and ``maps.npz`` of one image into ``directory`` (the layout and keys of
    :mod:`dermx.explain.outputs`); returns the file names."""
    labels = list(prediction.maps)
    probabilities = [prediction.probability(label) for label in labels]
    return write_image_outputs(directory, image=image, placement=prediction.placement,
                               input_size=prediction.input_size, labels=labels,
                               maps=np.stack([prediction.maps[label] for label in labels]),
                               probabilities=[math.nan if p is None else p for p in probabilities],
                               logits=[prediction.logits[label] for label in labels], method=prediction.method,
                               layer=prediction.layer)
