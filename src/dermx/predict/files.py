"""Files for ``dermx predict``: which inputs to read, and the per-image outputs it writes.

Outputs of one image go to ``OUT/<image stem>/`` (the stem keeps the subfolder of a searched folder):
``<target>.png`` for each map (e.g. ``diagnosis_Psoriasis.png``) and one ``maps.npz``, written by the
writer ``dermx explain`` uses too (:func:`dermx.explain.outputs.write_image_outputs`: same layout, same
keys). Every input has its own folder: inputs that would share one (``lesion.jpg`` and ``lesion.png``)
keep their suffix (``OUT/lesion.jpg/``, ``OUT/lesion.png/``), and a name still taken gets ``-2``, ``-3``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dermx.data.images import IMAGE_SUFFIXES
from dermx.explain.outputs import write_image_outputs
from dermx.predict.result import Prediction

#: Names an image's output folder must not take: the files ``dermx predict`` writes into ``OUT``.
RESERVED: frozenset[str] = frozenset({"predictions.json"})


@dataclass(frozen=True)
class Inputs:
    """Image files to predict, each with its own output folder (relative to ``OUT``), and the files passed
    over with why."""

    images: list[tuple[Path, str]]
    skipped: list[tuple[str, str]]


def collect(paths: list[Path]) -> Inputs:
    """Expand folders (recursively) into image files; everything not taken is in ``skipped``.

    A folder contributes files with an image suffix (others are skipped as "not an image file
    type"); a file named explicitly is always tried. Output folders are named after the input relative
    to the folder given, one per input (module docstring, :func:`_folders`).
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
    return Inputs(_folders(images), skipped)


def _stem(name: str) -> str:
    """``sub/b.png`` → ``sub/b``: a name without its image suffix."""
    path = Path(name)
    return str(path.with_suffix("")) if path.suffix.lower() in IMAGE_SUFFIXES else name


def _folders(named: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """Each input's output folder: its name without the image suffix, or with it when another input has
    that stem too (or it is a :data:`RESERVED` name); a folder still taken gets ``-2``, ``-3``, ...
    Names are compared case-insensitively, as some file systems do."""
    stems = [_stem(name) for _, name in named]
    counts = Counter(stem.casefold() for stem in stems)
    taken: set[str] = set()
    folders = []
    for (path, name), stem in zip(named, stems, strict=True):
        base = name if counts[stem.casefold()] > 1 or stem.casefold() in RESERVED else stem
        folder, n = base, 1
        while folder.casefold() in taken:
            n += 1
            folder = f"{base}-{n}"
        taken.add(folder.casefold())
        folders.append((path, folder))
    return folders


def write_outputs(prediction: Prediction, image: Image.Image, directory: Path, *, native_maps: bool = False
                  ) -> list[str]:
    """Write the map pictures and ``maps.npz`` of one image into ``directory`` (the layout and keys of
    :mod:`dermx.explain.outputs`); returns the file names. The pictures are drawn at the size of ``image``
    (a display-sized copy of a large photograph); ``native_maps`` also stores the maps at the original
    image size in ``maps.npz``."""
    labels = list(prediction.maps)
    probabilities = [prediction.probability(label) for label in labels]
    return write_image_outputs(directory, image=image, placement=prediction.placement,
                               input_size=prediction.input_size, labels=labels,
                               maps=np.stack([prediction.maps[label] for label in labels]),
                               probabilities=[math.nan if p is None else p for p in probabilities],
                               logits=[prediction.logits[label] for label in labels], method=prediction.method,
                               layer=prediction.layer, native_maps=native_maps)
