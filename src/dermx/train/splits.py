"""Patient-grouped splits of image items (no Lightning here: the benchmark imports them too).

The test part of a run is a fold's test set (DermXDB's patient-grouped folds, or :func:`kfold_split`
for an image collection); the validation part that selects the checkpoint is carved out of the fold's
training set by :func:`inner_split`. Both group by :attr:`Item.group <dermx.train.datasets.Item>`, the
patient, so no patient is split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from sklearn.model_selection import GroupKFold, GroupShuffleSplit

from dermx.data import DermXDBError
from dermx.train.datasets import Item


def inner_split(items: Sequence[Item], fraction: float, seed: int) -> tuple[list[Item], list[Item]]:
    """(train, validation) by patient group: about ``fraction`` of the groups go to validation."""
    groups = [item.group for item in items]
    if len(set(groups)) < 2:
        raise DermXDBError(f"cannot split {len(items)} image(s) from {len(set(groups))} patient(s) into "
                           "training and validation parts; need at least 2 patients")
    splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    train, val = next(splitter.split(list(range(len(items))), groups=groups))
    return [items[i] for i in train], [items[i] for i in val]


def kfold_split(items: Sequence[Item], fold: int, n_folds: int) -> tuple[list[Item], list[Item]]:
    """(train, test) of fold ``fold`` of a patient-grouped K-fold split of an image collection."""
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    splits = list(GroupKFold(n_splits=n_folds).split(list(range(len(items))),
                                                      groups=[i.group for i in items]))
    train, test = splits[fold]
    return [items[i] for i in train], [items[i] for i in test]


def parts_digest(parts: Mapping[str, Sequence[Item]], source: str) -> str:
    """SHA-256 (16 hex digits) of the training, validation and calibration items (keys, diagnoses, labels) and the
    data's name: the ``sha256`` of a training record, reproduced by the benchmark for older checkpoints."""
    digest = hashlib.sha256(source.encode())
    for name in ("train", "val", "calibration"):  # no calibration part: the digest of runs before it
        for item in sorted(parts.get(name, ()), key=lambda i: i.key):
            digest.update(f"{name}|{item.key}|{item.diagnosis}|{item.characteristics}".encode())
    return digest.hexdigest()[:16]
