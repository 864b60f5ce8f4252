"""A montage of a synthetic dataset: a few images per class with the raters' union map."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from dermx import vocab
from dermx.data.dataset import load_dermxdb
from dermx.data.synth.writer import IMAGES_DIR


def montage(out: str | Path, path: str | Path, *, per_class: int = 4, dpi: int = 70) -> Path:
    """Save a grid (one row per class) of images of ``out`` with their union map (mean fusion) as
    contours at 1/4 and 3/4 of the raters, as a 256-colour PNG; returns ``path``."""
    from dermx.plotting import pyplot

    plt = pyplot()

    out, path = Path(out), Path(path)
    db = load_dermxdb(out, image_dir=out / IMAGES_DIR)
    rows = [(d, [s for s in db.stems() if db.images[s].diagnosis == d][:per_class]) for d in vocab.DIAGNOSES]
    fig, axes = plt.subplots(len(rows), per_class, figsize=(2.6 * per_class, 2.1 * len(rows)), squeeze=False)
    for (diagnosis, stems), row in zip(rows, axes, strict=True):
        for j, ax in enumerate(row):
            ax.set_axis_off()
            if j >= len(stems):
                continue
            stem = stems[j]
            ax.imshow(db.load_image(stem))
            union = db.union_map(stem).numpy()
            ax.contour(union, levels=[0.25, 0.75], colors=["#00e5ff", "#ffee00"], linewidths=0.7)
            ax.set_title(f"{diagnosis} ({db.images[stem].skin_tone})", fontsize=7)
    fig.suptitle("Synthetic DermXDB: rater union map, cyan ≥ 1/4 and yellow ≥ 3/4 of raters", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi)
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a 256-colour palette keeps the figure small enough to live in the repository
    Image.open(buffer).convert("RGB").quantize(256).save(path, optimize=True)
    return path
