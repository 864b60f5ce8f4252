"""Which images a model is tested on: never one it was trained or selected on, unless told so.

A checkpoint's ``training_data`` (:mod:`dermx.train.provenance`) says what it saw. Against the
evaluation DermXDB :func:`choose_eval_set` decides:

- ``held-out``: the evaluation data is the training data (same :func:`~dermx.train.provenance.dermxdb_identity`):
  the images not in the model's recorded training list (for a ``dermx cv`` fold, its test part);
- ``other-data``: the model was trained on other data: every image, said so;
- ``fold-test``: an older checkpoint without identity or list, whose training fingerprint
  (``sha256``) is reproduced from the evaluation data with the run's split settings: the same data,
  so its fold's test part;
- ``overlap-allowed``: none of the above could be decided and ``allow_overlap`` is set: the fold's
  test part (if the checkpoint names a fold the data has) or every image, possibly seen in training.

Otherwise :class:`EvalSetError` explains why and how to proceed. Only images the image folder holds
(``available``) are tested; the others are counted by the caller.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dermx.data import DermXDB
from dermx.models import ModelConfig
from dermx.train.config import TrainConfig
from dermx.train.datamodule import fingerprint, inner_split
from dermx.train.datasets import dermxdb_items
from dermx.train.provenance import dermxdb_identity

RULES: dict[str, str] = {
    "held-out": "same data as training: the images not in its training list",
    "fold-test": "same training labels (older fingerprint reproduced): its fold's test part",
    "other-data": "trained on other data: every image",
    "overlap-allowed": "training data undecided (--allow-overlap): may include training images",
}


class EvalSetError(ValueError):
    """No test set can be chosen without risking (or hiding) train/test overlap."""


@dataclass(frozen=True)
class EvalSet:
    """The images a model is scored on and how they were chosen (a key of :data:`RULES`)."""

    stems: tuple[str, ...]
    rule: str
    excluded: int = 0
    note: str = ""

    @property
    def description(self) -> str:
        return RULES[self.rule] + (f"; {self.note}" if self.note else "")

    def describe(self) -> str:
        text = f"{len(self.stems)} test images ({self.description}"
        return text + (f"; {self.excluded} excluded as seen in training)" if self.excluded else ")")

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "description": self.description, "n": len(self.stems), "excluded": self.excluded}

    def restrict(self, db: DermXDB, diagnoses: Sequence[str], characteristics: Sequence[str]) -> EvalSet:
        """Keep the images whose reference diagnosis is one of ``diagnoses`` (the classes a model of its
        own vocabulary shares with DermXDB), and say so, naming the shared characteristics too."""
        kept = tuple(s for s in self.stems if db.images[s].diagnosis in diagnoses)
        if not kept:
            raise EvalSetError(f"none of the {len(self.stems)} test images is of a class the model knows "
                               f"({', '.join(diagnoses)})")
        note = (f"own vocabulary: diagnosis among the shared classes {', '.join(diagnoses)} "
                f"({len(self.stems) - len(kept)} images of other classes left out); shared characteristics: "
                f"{', '.join(characteristics) or 'none'}")
        return EvalSet(kept, self.rule, self.excluded, note)


def _run_config(directory: Path) -> TrainConfig:
    """The training run's settings when the checkpoint sits in a run folder (``<run>/model``), else defaults."""
    path = directory.parent / "config.json"
    if directory.name == "model" and path.is_file():
        return TrainConfig.from_dict(json.loads(path.read_text(encoding="utf-8")), str(path), strict=False)
    return TrainConfig()


def _reproduces(db: DermXDB, record: dict[str, Any], config: ModelConfig, settings: TrainConfig) -> bool:
    """Whether the evaluation data reproduces an older checkpoint's training fingerprint."""
    fold = record.get("fold")
    if fold is not None and fold not in db.folds:
        return False
    stems = db.fold(fold).train if fold is not None else db.stems()
    items = dermxdb_items(db, stems, config.characteristics, settings.dataset.label_rule, find_images=False)
    try:
        train, val = inner_split(items, settings.dataset.val_fraction, settings.run.seed)
    except ValueError:
        return False
    return fingerprint({"train": train, "val": val}, record.get("source", ""))["sha256"] == record.get("sha256")


def choose_eval_set(db: DermXDB, config: ModelConfig, directory: str | Path, *,
                    available: Sequence[str] | None = None, allow_overlap: bool = False,
                    identity: str | None = None) -> EvalSet:
    """The test images of the checkpoint in ``directory`` (module docstring); ``identity``: the
    evaluation data's :func:`~dermx.train.provenance.dermxdb_identity` when already computed."""
    directory = Path(directory)
    record = config.training_data or {}
    stems = db.stems()
    keep = set(stems if available is None else available)
    fold = record.get("fold")

    def chosen(candidates: Sequence[str], rule: str) -> EvalSet:
        tested = tuple(s for s in candidates if s in keep)
        if not tested:
            raise EvalSetError(f"{directory}: no test image left ({RULES[rule]}; "
                               f"{len(candidates)} candidate(s), none in the image folder)"
                               if candidates else f"{directory}: the model was trained on every image of "
                               f"{db.root}; no image is left to test it on (use other data, or --allow-overlap "
                               "to score it on its training images)")
        return EvalSet(tested, rule, len([s for s in stems if s in keep]) - len(tested)
                       if rule in ("held-out", "fold-test") else 0)

    if record.get("data_sha256"):
        if record["data_sha256"] == (identity or dermxdb_identity(db)):
            trained = set(record.get("images", ()))
            unseen = [s for s in stems if s not in trained]
            if "images" in record and (unseen or not allow_overlap):
                return chosen(unseen, "held-out")
        else:
            return chosen(stems, "other-data")
    elif record.get("sha256") and _reproduces(db, record, config, _run_config(directory)):
        return chosen(db.fold(fold).test if fold is not None else [], "fold-test")
    if allow_overlap:
        return chosen(db.fold(fold).test if fold is not None and fold in db.folds else stems, "overlap-allowed")
    what = ("records no training data" if not record else
            "records a training fingerprint that the evaluation data does not reproduce (other data, or "
            "other split settings)")
    raise EvalSetError(f"{directory}: cannot tell which images the model was trained on: it {what}. "
                       "Pass --allow-overlap to score it anyway (test images may include training images)")
