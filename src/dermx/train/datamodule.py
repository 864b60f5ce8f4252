"""The Lightning data module: which images train, select and test a model, and how they are fed.

Splits: the test part is a fold's test set (DermXDB's patient-grouped folds, or GroupKFold over
patients for an image collection) and is never seen during training or model selection. The
validation part used for model selection is carved out of the fold's training set with a
patient-grouped :class:`~sklearn.model_selection.GroupShuffleSplit`, so no patient is split. A test
part sharing an image or a patient with the training side (fold files that break the grouping, which
loading reports too: :mod:`dermx.data.folds`) is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
from rich.table import Table
from torch.utils.data import DataLoader

from dermx.data import DermXDB, DermXDBError, ReferenceMaps, dermxdb_identity, load_dermxdb
from dermx.data.cache import default_cache_dir
from dermx.data.coverage import ImageCoverage, image_coverage
from dermx.models.dermx_net import ModelConfig
from dermx.train.collection import Collection, collection_of
from dermx.train.config import TrainConfig
from dermx.train.datasets import ImageDataset, Item, check_items, dermxdb_items
from dermx.train.provenance import items_identity, training_record
from dermx.train.splits import inner_split, kfold_split

log = logging.getLogger(__name__)


def split_table(parts: Mapping[str, Sequence[Item]], classes: Sequence[str]) -> Table:
    """Images per split and, per diagnosis class, how many of them each split holds (printed before
    training, so that an empty class or a tiny validation split shows before minutes of training)."""
    table = Table(title="Training data", title_justify="left")
    table.add_column("split")
    table.add_column("images", justify="right")
    for name in classes:
        table.add_column(name, justify="right")
    for split, items in parts.items():
        counts = [0] * len(classes)
        for item in items:
            counts[item.diagnosis] += 1
        table.add_row(split, str(len(items)), *map(str, counts))
    return table


class DermXDataModule(L.LightningDataModule):
    """Train / validation / test loaders for one run (one fold) described by a :class:`TrainConfig`."""

    def __init__(self, config: TrainConfig, model_config: ModelConfig, collection: Collection | None = None) -> None:
        """``collection``: the image collection of ``config`` when already read (:func:`collection_of`)."""
        super().__init__()
        self.collection = collection
        self.config = config
        self.model_config = model_config
        self.parts: dict[str, list[Item]] = {}
        self.db: DermXDB | None = None
        self.source = ""
        self.identity = ""
        self.coverage: ImageCoverage | None = None

    @property
    def with_maps(self) -> bool:
        return self.config.attention_weight > 0 and bool(self.model_config.characteristics)

    def _items(self) -> tuple[list[Item], list[Item] | None]:
        """(all training-side items, test items or None), from the one source the configuration names."""
        data = self.config.dataset.data
        return self._dermxdb_items(data) if data is not None else self._collection_items()

    def _dermxdb_items(self, data: str | Path) -> tuple[list[Item], list[Item] | None]:
        """A DermXDB folder with the user's image folder: labels and maps from the raters, the test part
        (with ``fold``) from DermXDB's patient-grouped fold files."""
        dataset = self.config.dataset
        if dataset.images is None:
            raise DermXDBError("no image folder given: DermXDB ships without images (--images DIR)")
        if not Path(dataset.images).is_dir():
            raise DermXDBError(f"{dataset.images}: image folder does not exist")
        self.db = load_dermxdb(data, image_dir=dataset.images, cache_dir=dataset.cache_dir or default_cache_dir())
        self.source = Path(data).resolve().name
        self.identity = dermxdb_identity(self.db.root)
        self.coverage = image_coverage(self.db)
        if dataset.require_all_images or not self.coverage.found:
            self.coverage.require_all()
        if self.coverage.missing:
            log.warning("%s; training without them", self.coverage.message())

        def items(stems: Sequence[str]) -> list[Item]:
            return dermxdb_items(self.db, stems, self.model_config.characteristics, dataset.label_rule,
                                 annotators=dataset.raters)

        if dataset.fold is None:
            return items(self.coverage.found), None
        found = set(self.coverage.found)
        fold = self.db.fold(dataset.fold)
        return items([s for s in fold.train if s in found]), items([s for s in fold.test if s in found])

    def _collection_items(self) -> tuple[list[Item], list[Item] | None]:
        """A label table or class folders (:func:`collection_of`): characteristic labels at most, never
        maps; the test part (with ``fold``) from a patient-grouped K-fold split."""
        dataset = self.config.dataset
        collection = self.collection or collection_of(self.config)
        assert collection is not None
        self.collection = collection
        self.source = Path(dataset.labels or dataset.images or "").resolve().name
        kind = self.model_config.kind
        if self.with_maps:
            raise DermXDBError(f"model kind {kind!r} learns from expert maps: it needs a DermXDB folder (--data); "
                               "a table of characteristic labels trains 'dermx' (or 'dx-only') models")
        if kind != "dx-only" and not collection.characteristics:
            raise DermXDBError(f"model kind {kind!r} needs characteristic labels: a table (--labels) with one 0/1 "
                               "column per characteristic; class folders train 'dx-only' models only")
        if (tuple(self.model_config.diagnoses) != collection.classes
                or (kind != "dx-only" and tuple(self.model_config.characteristics) != collection.characteristics)):
            raise DermXDBError(f"the model's classes/characteristics differ from the data's ({collection.describe()})")
        missing = collection.skipped.get("image file not found", 0)
        if dataset.require_all_images and missing:
            raise DermXDBError(f"{dataset.labels}: {missing} image file(s) not found; every image is required "
                               "(--require-all-images)")
        if collection.skipped:
            log.warning("%s: %s", self.source, collection.describe())
        items = collection.items if kind != "dx-only" else [replace(i, characteristics=()) for i in collection.items]
        self.identity = items_identity(items)
        if dataset.fold is None:
            return items, None
        return kfold_split(items, dataset.fold, dataset.n_folds)

    def setup(self, stage: str | None = None) -> None:
        if self.parts:
            return
        train_side, test = self._items()
        if not train_side:
            raise DermXDBError(f"empty training split (fold {self.config.dataset.fold}): no labelled image with one "
                               "of the six reference diagnoses")
        train, val = inner_split(train_side, self.config.dataset.val_fraction, self.config.run.seed)
        calibration: list[Item] = []
        if self.config.dataset.calibration_fraction > 0:
            train, calibration = inner_split(train, self.config.dataset.calibration_fraction, self.config.run.seed + 1)
        self.parts = {"train": train, "val": val, "test": test or [], **({"calibration": calibration} if calibration
                                                                          else {})}
        held_out = {i.key for i in self.parts["test"]}
        if held_out & {i.key for i in train + val + calibration}:
            raise DermXDBError("test images overlap the training data; check the fold files")
        if leaked := sorted({i.group for i in self.parts["test"]} & {i.group for i in train + val + calibration}):
            shown = ", ".join(leaked[:5]) + (", ..." if len(leaked) > 5 else "")
            raise DermXDBError(f"{len(leaked)} patient(s) of the test part also have images in the training data "
                               f"({shown}): the test would not be on unseen patients; check the fold files")
        check_items([i for part in self.parts.values() for i in part])

    def dataset(self, part: str, *, augment: bool | None = None) -> ImageDataset:
        """The dataset of ``part`` (``train``, ``val``, ``calibration`` or ``test``); training augments by
        default."""
        cfg, mc = self.config, self.model_config
        maps = (ReferenceMaps(self.db, cfg.dataset.fusion, mc.characteristics,
                              annotators=tuple(cfg.dataset.raters) if cfg.dataset.raters else None)
                if self.with_maps and self.db else None)
        return ImageDataset(self.parts[part], mc.input_spec,
                            augment=cfg.dataset.augment if augment is None else augment, map_fn=maps,
                            in_memory=cfg.dataset.in_memory, color_jitter=cfg.dataset.color_jitter)

    def _loader(self, part: str, shuffle: bool) -> DataLoader:
        dataset = self.dataset(part, augment=None if shuffle else False)
        # a training batch of one image breaks batch norm: drop the incomplete last batch instead
        return DataLoader(dataset, batch_size=self.config.optim.batch_size, shuffle=shuffle,
                          drop_last=shuffle and len(dataset) > self.config.optim.batch_size,
                          num_workers=self.config.dataset.num_workers,
                          persistent_workers=self.config.dataset.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def fingerprint(self) -> dict[str, Any]:
        """The checkpoint's ``training_data`` record (:func:`~dermx.train.provenance.training_record`)."""
        return {**training_record(self.parts, self.source, fold=self.config.dataset.fold, identity=self.identity,
                                  missing_images=len(self.coverage.missing) if self.coverage else 0,
                                  left_out=dict(self.collection.skipped) if self.collection else {}),
                "raters": self.config.dataset.raters}
