"""Files for ``dermx predict``: which inputs to read, and the per-image outputs it writes.

Outputs of one image go to ``OUT/<image stem>/`` (the stem keeps the subfolder of a searched folder):
``<target>.png`` for each map (e.g. ``diagnosis_Psoriasis.png``, drawn by
:func:`dermx.explain.overlay.map_figure`: image beside overlay, colour bar, target and probability,
padding marked), and one ``maps.npz`` with each map on the original geometry (keys are the target
labels, e.g. ``diagnosis:Psoriasis``) and on the model input (``input/<label>``). ``dermx explain`` writes
the same layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dermx.data.images import IMAGE_SUFFIXES
from dermx.explain.methods import method_title
from dermx.explain.overlay import Frame, map_figure, map_title, target_filename
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
    """Write the map pictures and ``maps.npz`` of one image into ``directory``; returns the file names."""
    directory.mkdir(parents=True, exist_ok=True)
    placement = prediction.placement
    frame = None if placement.cropped else Frame(prediction.input_size, placement.inside)
    originals = {label: prediction.original_map(label) for label in prediction.maps}
    written = []
    for label in prediction.maps:
        name = target_filename(label)
        values = prediction.maps[label] if frame is not None and frame.padded else originals[label]
        title = map_title(label, prediction.probability(label), method_title(prediction.method))
        map_figure(image, values, title, frame).save(directory / name)
        written.append(name)
    arrays = {**originals, **{f"input/{label}": values for label, values in prediction.maps.items()}}
    np.savez_compressed(directory / "maps.npz", **arrays)  # type: ignore[arg-type]
    return [*written, "maps.npz"]
