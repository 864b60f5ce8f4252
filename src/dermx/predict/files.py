"""Files for ``dermx predict``: which inputs to read, and the per-image outputs it writes.

Outputs of one image go to ``OUT/<name>/``: ``overlay_<head>_<target>.png`` (the heat layer
composited on the original image) for each map, and ``maps.npz`` with each map on the original
geometry (keys are the target labels, e.g. ``diagnosis:Psoriasis``) and on the model input
(``input/<label>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dermx.data.images import IMAGE_SUFFIXES
from dermx.predict.overlay import blend
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


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_").lower()


def write_outputs(prediction: Prediction, image: Image.Image, directory: Path,
                  opacity: float = 0.6) -> list[str]:
    """Write the overlays and ``maps.npz`` of one image into ``directory``; returns the file names."""
    directory.mkdir(parents=True, exist_ok=True)
    originals = {label: prediction.original_map(label) for label in prediction.maps}
    written = []
    for label, values in originals.items():
        name = f"overlay_{_slug(label)}.png"
        blend(image, values, opacity).save(directory / name)
        written.append(name)
    arrays = {**originals, **{f"input/{label}": values for label, values in prediction.maps.items()}}
    np.savez_compressed(directory / "maps.npz", **arrays)  # type: ignore[arg-type]
    return [*written, "maps.npz"]
