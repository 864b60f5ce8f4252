"""Which images a model is tested on: never one it was trained or selected on, nor one of their patients.

A checkpoint's ``training_data`` (:mod:`dermx.train.provenance`) lists the images it was trained and
validated on (``images``), their pixel digests (``pixels``) and their patients (``patients``).
Whatever data the model is evaluated on, :func:`choose_eval_set` starts from every image with a
reference diagnosis that the image folder holds and excludes, counting each reason once per image in
this order:

1. ``listed``: the image's name is in the training list;
2. ``pixels``: its pixels hash to a training image's (:func:`dermx.data.pixel_digest`): the same
   picture under another name or in another lossless file;
3. ``patient``: it shows a patient seen in training: the patient of an image excluded above, or a
   patient id of the training record, compared only when the evaluation data shares an image or its
   identity with the training data (patient ids are local to a data set: patient 12 of another data
   set is another person).

The rule (a key of :data:`RULES`) says how the training data relate to the evaluation data:

- ``held-out``: the same data set (same :func:`~dermx.data.dermxdb_identity`): the images left are
  the model's held-out part (for a ``dermx cv`` fold, its test part);
- ``other-data``: the model was trained on other data (another release of the annotations, another
  folder, a label table): the images it never saw, its training images excluded all the same;
- ``fold-test``: an older checkpoint without a training list, whose training fingerprint
  (``sha256``) the evaluation data reproduce with the run's split settings: its fold's test part;
- ``overlap-allowed``: none of the above could be decided and ``allow_overlap`` is set: the fold's
  test part (if the checkpoint names a fold the data has) or every image, possibly seen in training.

Otherwise :class:`EvalSetError` explains why and how to proceed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from dermx.data import DermXDB, dermxdb_identity, pixel_digest
from dermx.models import ModelConfig
from dermx.train.config import TrainConfig
from dermx.train.datasets import dermxdb_items
from dermx.train.splits import inner_split, parts_digest

RULES: dict[str, str] = {
    "held-out": "same data as training: the images it never saw",
    "other-data": "trained on other data: the images it never saw",
    "fold-test": "same training labels (older fingerprint reproduced): its fold's test part",
    "overlap-allowed": "training data undecided (--allow-overlap): may include training images",
}
#: Why an image is not tested, in the order the reasons are checked (module docstring).
EXCLUSIONS: dict[str, str] = {
    "listed": "in the model's training list",
    "pixels": "same pixels as a training image",
    "patient": "a patient seen in training",
}


class EvalSetError(ValueError):
    """No test set can be chosen without risking (or hiding) train/test overlap."""


@dataclass(frozen=True)
class EvalSet:
    """The images a model is scored on, how they were chosen (a key of :data:`RULES`) and how many
    images were excluded for each reason of :data:`EXCLUSIONS`."""

    stems: tuple[str, ...]
    rule: str
    excluded: dict[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def description(self) -> str:
        return RULES[self.rule] + (f"; {self.note}" if self.note else "")

    def exclusions(self) -> str:
        """``"562 excluded: 562 in the model's training list"``, or ``""`` when none was."""
        counts = {k: v for k, v in self.excluded.items() if v}
        if not counts:
            return ""
        return (f"{sum(counts.values())} excluded: "
                + ", ".join(f"{n} {EXCLUSIONS[reason]}" for reason, n in counts.items()))

    def describe(self) -> str:
        text = f"{len(self.stems)} test images ({self.description}"
        return text + (f"; {self.exclusions()})" if self.exclusions() else ")")

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "description": self.description, "n": len(self.stems),
                "excluded": {reason: self.excluded.get(reason, 0) for reason in EXCLUSIONS}}

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
        return replace(self, stems=kept, note=note)


@cache
def _digest(path: str, _size: int, _mtime_ns: int) -> str:
    """:func:`dermx.data.pixel_digest` of a file, remembered while the file stays the same."""
    return pixel_digest(Path(path))


def _pixels(db: DermXDB, stem: str) -> str | None:
    path = db.image_path(stem)
    if path is None or not path.is_file():
        return None
    stat = path.stat()
    return _digest(str(path), stat.st_size, stat.st_mtime_ns)


def exclude_seen(db: DermXDB, stems: Sequence[str], record: dict[str, Any], same_data: bool
                 ) -> tuple[list[str], dict[str, int]]:
    """The ``stems`` the training record did not see, and the count excluded per reason (module docstring)."""
    listed = set(record.get("images", ()))
    pixels = set(record.get("pixels", ()))
    seen: dict[str, str] = {}
    for stem in stems:
        if stem in listed:
            seen[stem] = "listed"
        elif pixels and _pixels(db, stem) in pixels:
            seen[stem] = "pixels"
    patients = {db.images[s].patient for s in seen}
    if same_data or seen:
        patients |= set(record.get("patients", ()))
    for stem in stems:
        if stem not in seen and db.images[stem].patient in patients:
            seen[stem] = "patient"
    counts = {reason: sum(r == reason for r in seen.values()) for reason in EXCLUSIONS}
    return [s for s in stems if s not in seen], counts


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
    return parts_digest({"train": train, "val": val}, record.get("source", "")) == record.get("sha256")


def choose_eval_set(db: DermXDB, config: ModelConfig, directory: str | Path, *,
                    available: Sequence[str] | None = None, allow_overlap: bool = False,
                    identity: str | None = None) -> EvalSet:
    """The test images of the checkpoint in ``directory`` (module docstring). ``available``: the stems
    the image folder holds (default: every image with a reference diagnosis); ``identity``: the
    evaluation data's :func:`~dermx.data.dermxdb_identity` when already computed."""
    directory = Path(directory)
    record = config.training_data or {}
    found = set(db.stems() if available is None else available)
    pool = [s for s in db.stems() if s in found]
    fold = record.get("fold")
    if "images" in record or "pixels" in record:
        same = record.get("data_sha256") == (identity or dermxdb_identity(db.root))
        unseen, counts = exclude_seen(db, pool, record, same)
        if unseen:
            return EvalSet(tuple(unseen), "held-out" if same else "other-data", counts)
        if not allow_overlap:
            raise EvalSetError(f"{directory}: every one of the {len(pool)} images with a reference diagnosis in "
                               f"{db.root} was seen in training ({EvalSet((), 'held-out', counts).exclusions()}); "
                               "use other data, or --allow-overlap to score it on its training images")
    elif record.get("sha256") and _reproduces(db, record, config, _run_config(directory)):
        tested = tuple(s for s in db.fold(fold).test if s in found) if fold is not None else ()
        if not tested:
            raise EvalSetError(f"{directory}: no test image left ({RULES['fold-test']}; none in the image folder)")
        return EvalSet(tested, "fold-test")
    if allow_overlap:
        part = db.fold(fold).test if fold is not None and fold in db.folds else pool
        return EvalSet(tuple(s for s in part if s in found), "overlap-allowed")
    what = ("records no training data" if not record else
            "records a training fingerprint that the evaluation data does not reproduce (other data, or "
            "other split settings)")
    raise EvalSetError(f"{directory}: cannot tell which images the model was trained on: it {what}. "
                       "Pass --allow-overlap to score it anyway (test images may include training images)")
