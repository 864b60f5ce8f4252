"""Counts that describe a loaded DermXDB: what ``dermx data summary`` prints and writes."""

from __future__ import annotations

from collections import Counter
from typing import Any

from dermx import vocab
from dermx.data.dataset import DermXDB
from dermx.data.records import Pass


def dataset_summary(db: DermXDB) -> dict[str, Any]:
    """A JSON-ready dict of counts.

    Top-level integers: ``images``, ``images_with_metadata``, ``annotation_files``,
    ``empty_annotation_files``, ``merged_masks``, ``ignored_instance_masks``, ``first_pass_raters``,
    ``repeat_pass_images``, ``load_problems``. Tables (dicts of counts): ``ratings_per_annotator``,
    ``diagnoses_per_file``, ``diagnosis_selections``, ``characteristic_selections`` (files outlining),
    ``tag_selections``, ``reference_diagnosis``, ``skin_tone``, ``source``, ``folds``.
    """
    first = [r for r in db.ratings if r.pass_ == Pass.FIRST]
    with_meta = set(db.stems())
    return {
        "images": len(db.images),
        "images_with_metadata": len(with_meta),
        "annotation_files": len(db.ratings),
        "empty_annotation_files": sum(r.empty for r in db.ratings),
        "merged_masks": len(db.masks),
        "ignored_instance_masks": db.ignored_instance_masks,
        "first_pass_raters": len({r.rater for r in first}),
        "repeat_pass_images": len({r.stem for r in db.ratings if r.pass_ == Pass.REPEAT}),
        "images_without_localisation": sum(
            1 for s in with_meta if not any(r.shapes for r in db.ratings_of(s, db.annotators()))),
        "load_problems": len(db.report.issues),
        "ratings_per_annotator": dict(sorted(Counter(r.annotator for r in db.ratings).items(),
                                             key=lambda kv: (len(kv[0]), kv[0]))),
        "diagnoses_per_file": {str(k): v for k, v in sorted(Counter(len(r.diagnoses)
                                                                    for r in db.ratings).items())},
        "diagnosis_selections": _ordered(Counter(d for r in db.ratings for d in r.diagnoses),
                                         vocab.RATER_DIAGNOSES),
        "characteristic_selections": _ordered(
            Counter(c for r in db.ratings for c in r.characteristics),
            (*vocab.CHARACTERISTICS, *vocab.EXTRA_CHARACTERISTICS)),
        "tag_selections": _ordered(Counter(t for r in db.ratings for t in r.tags), vocab.TAGS),
        "low_quality_files": sum(r.low_quality for r in db.ratings),
        "reference_diagnosis": _ordered(Counter(db.images[s].diagnosis for s in with_meta), vocab.DIAGNOSES),
        "skin_tone": dict(Counter(str(db.images[s].skin_tone) for s in with_meta).most_common()),
        "source": dict(Counter(str(db.images[s].dataset) for s in with_meta).most_common()),
        "folds": {str(k): {"train": len(f.train), "test": len(f.test)} for k, f in sorted(db.folds.items())},
        "unknown_names": dict(vocab.UNKNOWN_NAMES),
    }


def _ordered(counts: Counter[Any], order: tuple[str, ...]) -> dict[str, int]:
    """Counts in vocabulary order (zeros included), then any unknown names seen."""
    out = {name: counts.get(name, 0) for name in order}
    out.update({str(k): v for k, v in counts.items() if k not in out})
    return out
