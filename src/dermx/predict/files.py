"""Files for ``dermx predict``: the per-image outputs it writes.

Outputs of one image go to its own folder (:mod:`dermx.explain.inputs`): ``<target>.png`` for each map
(e.g. ``diagnosis_Psoriasis.png``) and one ``maps.npz``, written by the writer ``dermx explain`` uses
too (:func:`dermx.explain.outputs.write_image_outputs`: same layout, same keys).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from dermx.explain.outputs import write_image_outputs
from dermx.predict.result import Prediction

#: Names an image's output folder must not take: the files ``dermx predict`` writes into ``OUT``.
RESERVED: frozenset[str] = frozenset({"predictions.json"})


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
                               layer=prediction.layer, native_maps=native_maps, abstains=prediction.trust.abstain)
