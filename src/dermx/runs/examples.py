"""``examples.npz``: the report's example images, the experts' maps and every model's maps of them.

Keys (each an (N, ...) stack over the N example images, in the order chosen): ``stems``;
``image`` (uint8, h, w, 3); ``union``, ``fused`` (16, h, w) and ``watermark``; ``present`` (16,);
``reference``; ``reasons``; :data:`RATER_MASKS` (annotators, 16, h, ⌈w/8⌉: ``numpy.packbits`` along
the width) and :data:`RATER_NAMES` (annotators; ``""`` where that annotator did not rate the image);
per model ``map:<model>``, ``chars:<model>`` (16, h, w; zero where the model lacks the
characteristic), ``char_prob:<model>`` (NaN where it lacks it), ``dx_prob:<model>`` (6,),
``predicted:<model>``; :data:`INSIDE` (4,): the image's box ``(top, left, h, w)`` in ``image`` (the rest
is padding added to fit the model input; runs before this key have none). Written by
:mod:`dermx.evaluate.benchmark.examples`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dermx.atomic import atomic_write
from dermx.runs.layout import EXAMPLES

RATER_MASKS, RATER_NAMES, INSIDE = "rater_masks", "rater_names", "inside"


def write_examples(out: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write the example arrays (module docstring) to ``out/examples.npz``."""
    path = Path(out) / EXAMPLES
    with atomic_write(path) as handle:
        np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]
    return path


def read_examples(run_dir: str | Path) -> dict[str, np.ndarray] | None:
    """The example arrays of ``run_dir``; ``None`` when the run chose none (or has no file)."""
    path = Path(run_dir) / EXAMPLES
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        examples = {k: data[k] for k in data.files}
    return examples if len(examples.get("stems", [])) else None


def rater_masks(examples: dict[str, np.ndarray], i: int) -> tuple[list[str], np.ndarray]:
    """``(names, masks)`` of the raters of example ``i``: the annotators who rated it and their masks
    ``(rater, characteristic, h, w)`` bool."""
    names = [str(n) for n in examples[RATER_NAMES][i]]
    masks = np.unpackbits(examples[RATER_MASKS][i], axis=-1, count=examples["image"].shape[2]).astype(bool)
    rated = [k for k, n in enumerate(names) if n]
    return [names[k] for k in rated], masks[rated]
