"""The files ``dermx explain`` writes for one image, in the layout ``dermx predict`` uses:
``OUT/<image stem>/<target>.png`` (:func:`dermx.explain.overlay.map_figure`) and one ``maps.npz``
(``maps`` ``(T, H, W)`` float32 on the model input, ``targets``, ``logits``, ``probabilities``, ``layer``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from dermx.explain.overlay import Frame, map_figure, map_title, target_filename


def write_explanations(directory: Path, *, image: Image.Image, pixels: np.ndarray, frame: Frame | None,
                       labels: Sequence[str], maps: np.ndarray, logits: np.ndarray, probabilities: np.ndarray,
                       layer: str, method: str) -> list[str]:
    """Write one image's pictures and ``maps.npz`` into ``directory``; returns the file names.

    ``image`` is the original, ``pixels`` the model input (shown instead of the original when ``frame``
    is ``None``: the input was cropped), ``maps`` the ``(T, H, W)`` maps on the model input.
    """
    directory.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(directory / "maps.npz", maps=maps.astype(np.float32), targets=np.array(labels),
                        logits=logits, probabilities=probabilities, layer=layer)
    shown = image if frame is not None else Image.fromarray(pixels)
    written = []
    for label, values, probability in zip(labels, maps, probabilities, strict=True):
        name = target_filename(label)
        map_figure(shown, values, map_title(label, float(probability), method), frame).save(directory / name)
        written.append(name)
    return ["maps.npz", *written]
