"""A tiny trainable DermXDB: six diagnoses, one characteristic per diagnosis drawn as a coloured
rectangle that three raters outline (the third one a little off), JPEG images, two patient folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dermx import vocab
from dermx.train import TrainConfig
from support import DermXDBWriter, polygon

WIDTH, HEIGHT = 48, 40
COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40), (200, 40, 200), (40, 200, 200)]


def write_tiny_dermxdb(root: Path, per_class: int = 4, seed: int = 0, prefix: str = "img") -> tuple[Path, Path]:
    """Write ``root/dermxdb`` and ``root/images``; image i (``<prefix>NNN``) has diagnosis i % 6 and patient
    i // 2."""
    rng = np.random.default_rng(seed)
    writer = DermXDBWriter(root / "dermxdb")
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows, fold_rows = [], []
    for i in range(6 * per_class):
        stem, dx, patient = f"{prefix}{i:03d}", i % 6, i // 2
        x0, y0 = int(rng.integers(2, WIDTH - 22)), int(rng.integers(2, HEIGHT - 18))
        box = [(x0, y0), (x0 + 18, y0), (x0 + 18, y0 + 14), (x0, y0 + 14)]
        pixels = rng.integers(90, 130, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
        pixels[y0:y0 + 14, x0:x0 + 18] = COLOURS[dx]
        Image.fromarray(pixels).save(images / f"{stem}.jpeg", quality=95)
        diagnosis, char = vocab.DIAGNOSES[dx], vocab.CHARACTERISTICS[dx]
        for rater, shift in (("labeller1", 0), ("labeller2", 0), ("labeller3", 3)):
            shape = [(x + shift, y) for x, y in box]
            writer.annotation(rater, stem, [{"name": diagnosis, "tag": {}}, {"name": char, **polygon(shape)}],
                              size=(WIDTH, HEIGHT))
        rows.append((stem, diagnosis))
        fold_rows.append((stem, diagnosis, patient))
    writer.metadata(rows)
    even = [r for r in fold_rows if r[2] % 2 == 0]
    odd = [r for r in fold_rows if r[2] % 2 == 1]
    writer.folds([(odd, even), (even, odd)])
    return writer.root, images


@pytest.fixture(scope="session")
def tiny_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(DermXDB folder, image folder) of 24 images, 12 patients, 2 folds."""
    return write_tiny_dermxdb(tmp_path_factory.mktemp("tiny"))


def tiny_config(tiny_db: tuple[Path, Path], out: Path, **changes: object) -> TrainConfig:
    """A fast run on the tiny DermXDB: fold 0 gives 8 training images (one batch, so one step per epoch),
    4 validation images (Acne, Actinic keratosis, Acne, Actinic keratosis) and 12 test images."""
    return TrainConfig.of(data=str(tiny_db[0]), images=str(tiny_db[1]), kind="dx-only", preset="cpu",
                       input_size=(32, 32), epochs=1, batch_size=8, pretrained=False, fold=0, val_fraction=0.25,
                       progress=False, in_memory=True, augment=False, cache_dir=str(out.parent / "cache"),
                       out=str(out), log_every_n_steps=1).replace(**changes)
