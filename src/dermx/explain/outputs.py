"""The files of one image, written alike by ``dermx explain`` and ``dermx predict`` (one writer):
``OUT/<image stem>/<target>.png`` for each map (:func:`dermx.explain.overlay.map_figure`: the image
beside the overlay, colour bar, target and probability, padding marked) and one ``maps.npz`` holding
the arrays :data:`MAPS_KEYS`, for ``T`` targets:

- ``targets`` ``(T,)``: the target labels (``diagnosis:Psoriasis``, ``characteristic:Plaque``, or a
  classifier's class);
- ``maps`` ``(T, h, w)`` float32 in [0, 1]: the maps on the model input;
- ``probabilities``, ``logits`` ``(T,)`` float32: each target's probability and logit;
- ``method``, ``layer``: the CAM method and the layer it was computed on;
- ``original_size``, ``resized_size``, ``inside``, ``visible``: the image's :class:`dermx.geometry.Placement`
  in the model input; :func:`read_placement` rebuilds it, and ``placement.restore(maps)`` puts the maps on
  the original image;
- only when asked (``native_maps``): ``native_maps`` ``(T, H, W)`` float16, the maps on the original image.

The pictures are drawn at the size of the image given, which may be a display-sized copy of the original.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dermx.explain.methods import method_title
from dermx.explain.overlay import frame_of, map_figure, map_title, target_filename
from dermx.geometry import Placement

#: The arrays of every ``maps.npz`` (module docstring).
MAPS_KEYS: tuple[str, ...] = ("targets", "maps", "probabilities", "logits", "method", "layer", "original_size",
                              "resized_size", "inside", "visible")
MAPS_FILE = "maps.npz"


def write_image_outputs(directory: Path, *, image: Image.Image, placement: Placement, input_size: Sequence[int],
                        labels: Sequence[str], maps: np.ndarray, probabilities: Sequence[float],
                        logits: Sequence[float], method: str, layer: str, native_maps: bool = False,
                        abstains: bool = False) -> list[str]:
    """Write one image's pictures and ``maps.npz`` into ``directory``; returns the file names.

    ``image`` is the original or a smaller copy of it (the pictures' size), ``maps`` the ``(T, h, w)``
    maps on the model input, ``method`` the CAM method's name. A padded input is drawn whole (padding
    hatched); otherwise each map is put back on the image (:meth:`Placement.restore` at the image's size;
    0 where a crop cut the image away). ``native_maps``: also store the maps at the original size.
    ``abstains``: the model gives no single diagnosis (its diagnosis maps are titled as classes,
    :func:`~dermx.explain.overlay.map_title`).
    """
    directory.mkdir(parents=True, exist_ok=True)
    frame = frame_of(placement, input_size)
    written = []
    drawn = (image.height, image.width)
    for label, values, probability in zip(labels, maps, probabilities, strict=True):
        shown = (values if frame is not None else
                 placement.restore(torch.from_numpy(np.asarray(values)), drawn).numpy())
        title = map_title(label, float(probability), method_title(method), abstains=abstains)
        map_figure(image, shown, title, frame).save(directory / target_filename(label))
        written.append(target_filename(label))
    native = {"native_maps": np.stack([placement.restore(torch.from_numpy(np.asarray(m))).numpy().astype(np.float16)
                                       for m in maps])} if native_maps else {}
    np.savez_compressed(directory / MAPS_FILE, allow_pickle=False, **native,
                        targets=np.asarray(list(labels), dtype=str),
                        maps=np.asarray(maps, dtype=np.float32),
                        probabilities=np.asarray(probabilities, dtype=np.float32),
                        logits=np.asarray(logits, dtype=np.float32), method=np.asarray(method),
                        layer=np.asarray(layer), original_size=np.asarray(placement.original),
                        resized_size=np.asarray(placement.resized), inside=np.asarray(placement.inside),
                        visible=np.asarray(placement.visible))
    return [*written, MAPS_FILE]


def read_placement(saved: Mapping[str, np.ndarray]) -> Placement:
    """The :class:`~dermx.geometry.Placement` stored in a ``maps.npz`` (opened with ``numpy.load``)."""
    def ints(key: str) -> tuple[int, ...]:
        return tuple(int(v) for v in saved[key])

    return Placement(ints("original_size"), ints("resized_size"), ints("inside"), ints("visible"))  # type: ignore[arg-type]
