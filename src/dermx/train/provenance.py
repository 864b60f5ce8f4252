"""What a checkpoint records about the data it was trained on, so the benchmark can pick test images.

``training_data`` of a checkpoint (:class:`~dermx.models.ModelConfig`), written by
:meth:`~dermx.train.DermXDataModule.fingerprint`:

============  ==========================================================================
``source``    the data folder's (or label file's) name, never a path of the training machine
``sha256``    digest of the training and validation items (keys, diagnoses, labels)
``data_sha256`` identity of the whole dataset (:func:`dermxdb_identity`, :func:`items_identity`):
              the same annotations give the same identity wherever the folder lives
``images``    the keys of every training and validation image, sorted
``fold``      the held-out fold, if any; ``n_train``, ``n_val``, ``n_test``
``missing_images`` DermXDB images the image folder did not hold (left out of every part)
============  ==========================================================================
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from dermx.data import DermXDB
from dermx.train.datasets import Item

#: The DermXDB files whose content defines a dataset (images are not part of the release).
IDENTITY_FILES: tuple[str, ...] = ("annotations/*.json", "metadata.csv", "folds/*.csv")


def dermxdb_identity(db: DermXDB) -> str:
    """SHA-256 (16 hex digits) of a DermXDB folder's annotation, metadata and fold files: names
    relative to the folder and contents, so a copy or move keeps its identity and a different dataset
    (another synthetic seed with the same file names) does not share it."""
    digest = hashlib.sha256()
    for pattern in IDENTITY_FILES:
        for path in sorted(db.root.glob(pattern)):
            digest.update(f"{path.relative_to(db.root).as_posix()}|{path.stat().st_size}|".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def items_identity(items: Sequence[Item]) -> str:
    """SHA-256 (16 hex digits) of an image collection: each item's key, diagnosis, patient group and
    the bytes of its image file."""
    digest = hashlib.sha256()
    for item in sorted(items, key=lambda i: i.key):
        digest.update(f"{item.key}|{item.diagnosis}|{item.group}|".encode())
        digest.update(item.path.read_bytes() if item.path.is_file() else b"")
    return digest.hexdigest()[:16]
