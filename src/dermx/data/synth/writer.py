"""Write a synthetic dataset in the DermXDB release format, plus images, ground truth and a manifest.

Output layout (``out/``)::

    annotations/labeller{N}_{stem}.json     Darwin JSON, one per (rater, image); labeller{N}2_ = repeat
    masks/masks/labeller{N}_{stem}_{Characteristic}.png   merged masks, 0/255 mode L, native size
    masks/instance_mask_annotations.csv     image_id, mask_id, class_name: one row per outlined shape
    metadata.csv                            ';'-separated, as in the release
    folds/metadata_fold_{k}_{train,test}.csv
    images/{stem}.jpeg                      the rendered images (fixed JPEG quality)
    ground_truth/{stem}.npz                 what was drawn: ``masks`` (16, H, W) bool in
                                            vocab.CHARACTERISTICS order, and ``characteristics``
    synth.json                              config, seed and per-image facts (lesions, watermark box)

Every file is a pure function of the config: JSON with fixed key order, PNG/JPEG without metadata,
``.npz`` archives with a fixed zip timestamp.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from dermx import vocab
from dermx.data.masks import rasterise
from dermx.data.reader import ANNOTATIONS_DIR, FOLDS_DIR, MASKS_DIR, METADATA_FILE
from dermx.data.synth.cohort import ImagePlan
from dermx.data.synth.geometry import Lesion
from dermx.data.synth.raters import RatingDraft
from dermx.data.synth.watermark import box_mask
from dermx.jsonio import strict_json, write_json

IMAGES_DIR = "images"
GROUND_TRUTH_DIR = "ground_truth"
MANIFEST = "synth.json"
INSTANCE_CSV = Path("masks") / "instance_mask_annotations.csv"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def make_dirs(out: Path) -> None:
    for sub in (ANNOTATIONS_DIR, MASKS_DIR, FOLDS_DIR, IMAGES_DIR, GROUND_TRUTH_DIR):
        (out / sub).mkdir(parents=True, exist_ok=True)


def _points(ring: np.ndarray) -> list[dict[str, float]]:
    return [{"x": float(x), "y": float(y)} for x, y in ring]


def _shape_annotation(outline: Lesion) -> dict[str, Any]:
    """A polygon annotation, keys in the release's (alphabetical) order; several rings → complex."""
    x0, y0 = np.min([r.min(axis=0) for r in outline.rings], axis=0)
    x1, y1 = np.max([r.max(axis=0) for r in outline.rings], axis=0)
    annotation: dict[str, Any] = {}
    if outline.attributes:
        annotation["attributes"] = list(outline.attributes)
    annotation["bounding_box"] = {"h": round(float(y1 - y0), 2), "w": round(float(x1 - x0), 2),
                                  "x": float(x0), "y": float(y0)}
    if len(outline.rings) > 1:
        annotation["complex_polygon"] = {"path": [_points(r) for r in outline.rings]}
    annotation["name"] = outline.characteristic
    if len(outline.rings) == 1:
        annotation["polygon"] = {"path": _points(outline.rings[0])}
    return annotation


def annotation_json(draft: RatingDraft, stem: str, size: tuple[int, int]) -> str:
    """The Darwin-style JSON text of one rating."""
    height, width = size
    filename = f"{draft.annotator}_{stem}.jpg"
    annotations = [_shape_annotation(o) for o in draft.outlines]
    annotations += [{"name": name, "tag": {}} for name in (*draft.diagnoses, *draft.tags)]
    data = {
        "dataset": "Synthetic DermXDB",
        "image": {"width": width, "height": height, "original_filename": filename, "filename": filename,
                  "path": "/"},
        "annotations": annotations,
    }
    return strict_json(data)


def write_rating(out: Path, draft: RatingDraft, stem: str, size: tuple[int, int]) -> list[list[str]]:
    """Write a rating's JSON and merged mask PNGs; return its instance-CSV rows."""
    height, width = size
    prefix = f"{draft.annotator}_{stem}"
    (out / ANNOTATIONS_DIR / f"{prefix}.json").write_text(annotation_json(draft, stem, size), encoding="utf-8")
    for characteristic in sorted({o.characteristic for o in draft.outlines}):
        shapes = [o.shape() for o in draft.outlines if o.characteristic == characteristic]
        mask = rasterise(shapes, width, height)
        Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(
            out / MASKS_DIR / f"{prefix}_{characteristic}.png", optimize=False)
    return [[prefix, f"{prefix}_{i:05d}", o.characteristic] for i, o in enumerate(draft.outlines)]


def write_instance_csv(out: Path, rows: Sequence[Sequence[str]]) -> None:
    with (out / INSTANCE_CSV).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["image_id", "mask_id", "class_name"])
        writer.writerows(rows)


def write_metadata(out: Path, plans: Sequence[ImagePlan]) -> None:
    with (out / METADATA_FILE).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=";", lineterminator="\n")
        writer.writerow(["original_filename", "dataset", "diagnosis", "current_filename", "skin_tone", "age"])
        for p in plans:
            writer.writerow([p.original_filename, p.dataset, p.diagnosis, p.current_filename,
                             p.patient.skin_tone, p.patient.age])


def write_folds(out: Path, plans: Sequence[ImagePlan], n_folds: int) -> None:
    """``folds/metadata_fold_{k}_{train,test}.csv``: the test set of fold k is the images of fold k."""
    for k in range(n_folds):
        for part in ("train", "test"):
            with (out / FOLDS_DIR / f"metadata_fold_{k}_{part}.csv").open("w", newline="", encoding="utf-8") as h:
                writer = csv.writer(h, lineterminator="\n")
                writer.writerow(["", "original_filename", "dataset", "diagnosis", "current_filename",
                                 "patient_id"])
                writer.writerows([p.index, p.original_filename, p.dataset, p.diagnosis, p.current_filename,
                                  p.patient_id] for p in plans if (p.fold == k) == (part == "test"))


def save_ground_truth(path: Path, masks: np.ndarray) -> None:
    """Write (16, H, W) bool masks as a deflated ``.npz`` with a fixed timestamp (byte-reproducible)."""
    arrays = {"masks": masks.astype(bool), "characteristics": np.array(vocab.CHARACTERISTICS)}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def load_ground_truth(out: str | Path, stem: str) -> torch.Tensor:
    """The drawn lesion masks of an image: (16, H, W) bool, in ``vocab.CHARACTERISTICS`` order."""
    with np.load(Path(out) / GROUND_TRUTH_DIR / f"{stem}.npz", allow_pickle=False) as data:
        if tuple(data["characteristics"]) != vocab.CHARACTERISTICS:
            raise ValueError(f"{stem}: ground truth characteristics differ from vocab.CHARACTERISTICS")
        return torch.from_numpy(data["masks"].copy())


def write_synth_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Write the ``synth.json`` manifest of a synthetic dataset (its configuration, each image's lesions,
    watermark and ground truth)."""
    write_json(out / MANIFEST, manifest, indent=1)


def read_synth_manifest(out: str | Path) -> dict[str, Any]:
    """The ``synth.json`` manifest of a synthetic dataset."""
    return json.loads((Path(out) / MANIFEST).read_text(encoding="utf-8"))


def watermark_mask(out: str | Path, stem: str) -> torch.Tensor:
    """Where the shortcut watermark of an image is: (H, W) bool, all False if it has none."""
    manifest = read_synth_manifest(out)
    height, width = manifest["config"]["size"]
    for entry in manifest["images"]:
        if entry["stem"] == stem:
            box = entry["watermark"]
            return torch.from_numpy(box_mask(tuple(box) if box else None, (height, width)))
    raise KeyError(f"{stem!r} is not an image of {out}")
