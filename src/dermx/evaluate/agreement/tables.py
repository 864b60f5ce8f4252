"""How much dermatologists agree with each other: diagnosis, identification and localization.

Agreement is measured over ordered rater pairs (a, b), a ≠ b, with b as the reference, on the images
both rated (docs/design.md, section 4):

- diagnosis: each rater against the reference diagnosis of ``metadata.csv`` (per-class and macro F1
  over the six classes; a file with several diagnoses counts its first tag; a file with none counts
  as wrong), and per class over rater pairs (one-vs-rest F1 and Cohen's kappa, Other-disease included);
- identification: per characteristic (outlined, or given as a tag), F1 and kappa of selecting it;
- localization: per characteristic, on the images where both outlined it, the fuzzy sensitivity,
  specificity, Dice and IoU of a's mask against b's; and each rater against the ``mean`` fusion of
  all the other raters of the image (leave-one-rater-out), on images where the rater and at least one
  other outlined it.

Localization is computed from overlaps. With binary masks S_r (one row per rater, pixels flattened),
the overlap matrix O = S Sᵀ holds TP(a, b) = |a ∧ b|, and every other count follows from it and the
mask areas |a| = O_aa: FP = |a| − TP, FN = |b| − TP, TN = N − |a| − |b| + TP. For the
leave-one-out reference y = Σ_{b≠a} S_b / (R − 1): TP = Σ_{b≠a} O_ab / (R − 1) and
Σy = Σ_{b≠a} |b| / (R − 1). Because the prediction is binary, min(a, y) = a·y, so these are exactly
the Zadeh fuzzy counts of :func:`dermx.metrics.fuzzy_confusion`, obtained with one matrix product per
(image, characteristic) instead of one pixel pass per pair.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from dermx import vocab
from dermx.data.dataset import DermXDB, MaskSource
from dermx.data.masks import Size
from dermx.data.reader import split_annotator
from dermx.metrics import FuzzyConfusion, diagnosis_scores, identification_scores
from dermx.runs.interrater import LOCALIZATION_SCORES

NO_DIAGNOSIS = "No diagnosis"

Pair = tuple[str, str]
"""(annotator a, reference annotator b)."""


def confusion_from_overlap(tp: torch.Tensor, prediction_sum: torch.Tensor, reference_sum: torch.Tensor,
                           pixels: torch.Tensor | float) -> FuzzyConfusion:
    """Fuzzy confusion of a *binary* prediction from its overlap with the reference (module doc).

    ``tp`` = Σ p·y, ``prediction_sum`` = Σp, ``reference_sum`` = Σy, ``pixels`` = N.
    """
    union = prediction_sum + reference_sum - tp
    return FuzzyConfusion(
        tp=tp, fp=prediction_sum - tp, fn=reference_sum - tp, tn=pixels - union,
        reference_sum=reference_sum, reference_complement_sum=pixels - reference_sum,
        prediction_sum=prediction_sum, prediction_complement_sum=pixels - prediction_sum, union=union)


def rater_diagnosis(db: DermXDB, stem: str, annotator: str) -> str:
    """A rater's answer for an image: the first diagnosis tag, or :data:`NO_DIAGNOSIS`."""
    ratings = db.ratings_of(stem, [annotator])
    return (ratings[0].diagnosis if ratings else None) or NO_DIAGNOSIS


def all_ordered_pairs(annotators: Sequence[str]) -> list[Pair]:
    return list(itertools.permutations(annotators, 2))


def repeat_pairs(db: DermXDB) -> list[Pair]:
    """(repeat annotator, first-pass annotator of the same rater): ``(labeller32, labeller3)``."""
    return [(annotator, split_annotator(annotator)[0]) for annotator in db.annotators("repeat")]


# ----- diagnosis -----------------------------------------------------------------------------------
def diagnosis_vs_reference(db: DermXDB, stems: Sequence[str], annotators: Sequence[str]) -> pd.DataFrame:
    """Per rater: per-class F1 and macro F1 over the six classes against the reference diagnosis."""
    rows = []
    for annotator in annotators:
        rated = [s for s in stems if db.ratings_of(s, [annotator])]
        truth = [db.images[s].diagnosis or "" for s in rated]
        answers = [rater_diagnosis(db, s, annotator) for s in rated]
        scores = diagnosis_scores(truth, answers, vocab.DIAGNOSES, other_labels=(vocab.OTHER_DISEASE, NO_DIAGNOSIS))
        f1 = scores.per_class.f1.values.tolist()
        rows.append({"rater": annotator, "images": len(rated), "accuracy": scores.accuracy,
                     "macro_f1": float(np.nanmean(f1)), **dict(zip(vocab.DIAGNOSES, f1, strict=True)),
                     "no_diagnosis": answers.count(NO_DIAGNOSIS)})
    columns = ["rater", "images", "accuracy", "macro_f1", *vocab.DIAGNOSES, "no_diagnosis"]
    return pd.DataFrame(rows, columns=columns)


def _pair_rows(db: DermXDB, stems: Sequence[str], pairs: Iterable[Pair],
               answer: Callable[[str, str], object]) -> Iterable[tuple[Pair, list[object], list[object]]]:
    for a, b in pairs:
        shared = [s for s in stems if db.ratings_of(s, [a]) and db.ratings_of(s, [b])]
        if shared:
            yield (a, b), [answer(s, a) for s in shared], [answer(s, b) for s in shared]


def diagnosis_pairwise(db: DermXDB, stems: Sequence[str], pairs: Sequence[Pair]) -> pd.DataFrame:
    """Per ordered pair and class (six + Other-disease): one-vs-rest F1 and kappa, b as reference."""
    classes = vocab.RATER_DIAGNOSES
    rows = []
    for (a, b), answers_a, answers_b in _pair_rows(db, stems, pairs, lambda s, r: rater_diagnosis(db, s, r)):
        y_true = np.array([[x == c for c in classes] for x in answers_b])
        y_pred = np.array([[x == c for c in classes] for x in answers_a])
        scores = identification_scores(y_true, y_pred, classes)
        for i, name in enumerate(classes):
            rows.append({"a": a, "b": b, "class": name, "images": len(answers_a),
                         "f1": scores.f1.values[i].item(), "kappa": scores.kappa.values[i].item()})
    return pd.DataFrame(rows, columns=["a", "b", "class", "images", "f1", "kappa"])


# ----- identification ------------------------------------------------------------------------------
def identification_pairwise(db: DermXDB, stems: Sequence[str], pairs: Sequence[Pair],
                            names: Sequence[str] = (*vocab.CHARACTERISTICS, *vocab.TAGS)) -> pd.DataFrame:
    """Per ordered pair and characteristic (outlined or tagged): F1 and kappa of selecting it."""
    def selected(stem: str, annotator: str) -> list[bool]:
        rating = db.ratings_of(stem, [annotator])[0]
        chosen = rating.characteristics | set(rating.tags)
        return [n in chosen for n in names]

    rows = []
    for (a, b), answers_a, answers_b in _pair_rows(db, stems, pairs, selected):
        scores = identification_scores(np.array(answers_b), np.array(answers_a), names)
        for i, name in enumerate(names):
            rows.append({"a": a, "b": b, "characteristic": name, "images": len(answers_a),
                         "f1": scores.f1.values[i].item(), "kappa": scores.kappa.values[i].item()})
    return pd.DataFrame(rows, columns=["a", "b", "characteristic", "images", "f1", "kappa"])


# ----- localization --------------------------------------------------------------------------------
@dataclass(frozen=True)
class LocalizationTables:
    """One row per scored item: ``pairs`` (stem, characteristic, a, b) and ``leave_one_out``
    (stem, characteristic, a, raters in the reference), each with the four scores."""

    pairs: pd.DataFrame
    leave_one_out: pd.DataFrame


def _scores(confusion: FuzzyConfusion) -> dict[str, np.ndarray]:
    return {name: getattr(confusion, name)().values.numpy() for name in LOCALIZATION_SCORES}


def _overlap(masks: np.ndarray) -> torch.Tensor:
    """O = S Sᵀ for binary masks (R, H, W): O_ab = |a ∧ b|.

    Masks are bit-packed into 64-bit words and each pair's overlap is the population count of their
    AND, inside the bounding box of the masks' union: exact integer counts at a small fraction of
    the cost of a float matrix product over native-resolution pixels.
    """
    drawn = np.any(masks, axis=0)
    rows, cols = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
    raters = masks.shape[0]
    if rows.size == 0:
        return torch.zeros((raters, raters), dtype=torch.float64)
    crop = masks[:, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].reshape(raters, -1)
    packed = np.packbits(crop, axis=1)
    packed = np.pad(packed, ((0, 0), (0, -packed.shape[1] % 8))).view(np.uint64)  # (R, words)
    counts = np.bitwise_count(packed[:, None, :] & packed[None, :, :]).sum(axis=-1, dtype=np.int64)
    return torch.from_numpy(counts).double()


def localization_agreement(
    db: DermXDB,
    stems: Sequence[str],
    pairs: Sequence[Pair],
    *,
    characteristics: Sequence[str] = vocab.CHARACTERISTICS,
    size: Size | None = None,
    source: MaskSource = "json",
    leave_one_out: bool = True,
    progress: Callable[[Iterable[str]], Iterable[str]] = iter,
) -> LocalizationTables:
    """Score each pair's masks on each image where both outlined a characteristic (module doc).

    Masks are loaded once per image (``size`` = (height, width), ``None`` = native; ``source`` =
    ``"json"`` polygons or released ``"png"`` masks) and all pairs of an image are scored with one
    overlap matrix per characteristic.
    """
    pair_set = set(pairs)
    involved = sorted({r for p in pairs for r in p}, key=lambda a: (len(a), a))
    pair_rows: list[dict[str, object]] = []
    loo_rows: list[dict[str, object]] = []
    for stem in progress(stems):
        ratings = db.ratings_of(stem, involved)
        if len(ratings) < 2:
            continue
        names = [r.annotator for r in ratings]
        outlined = np.array([[c in r.characteristics for r in ratings] for c in characteristics])
        active = np.flatnonzero(outlined.sum(axis=1) >= 2).tolist()
        if not active:
            continue
        stack = db.rater_stack(stem, annotators=names, characteristics=[characteristics[i] for i in active],
                               size=size, source=source)
        pixels = float(stack.shape[-1] * stack.shape[-2])
        for k, c_index in enumerate(active):
            characteristic = characteristics[c_index]
            overlap = _overlap(stack[k].numpy())
            area = overlap.diagonal()
            drew = outlined[c_index]
            chosen = [(i, j) for i, j in itertools.permutations(range(len(names)), 2)
                      if drew[i] and drew[j] and (names[i], names[j]) in pair_set]
            if chosen:
                i_idx = torch.tensor([i for i, _ in chosen])
                j_idx = torch.tensor([j for _, j in chosen])
                scores = _scores(confusion_from_overlap(
                    overlap[i_idx, j_idx].double(), area[i_idx].double(), area[j_idx].double(), pixels))
                for n, (i, j) in enumerate(chosen):
                    pair_rows.append({"stem": stem, "characteristic": characteristic, "a": names[i],
                                      "b": names[j], **{s: float(v[n]) for s, v in scores.items()}})
            if leave_one_out:
                others = len(names) - 1
                raters = [i for i in range(len(names)) if drew[i]]  # drew.sum() >= 2 for active ones
                idx = torch.tensor(raters)
                tp = (overlap[idx].sum(dim=1) - area[idx]) / others
                ref_sum = (area.sum() - area[idx]) / others
                scores = _scores(confusion_from_overlap(tp.double(), area[idx].double(), ref_sum.double(),
                                                        pixels))
                for n, i in enumerate(raters):
                    loo_rows.append({"stem": stem, "characteristic": characteristic, "a": names[i],
                                     "reference_raters": others, **{s: float(v[n]) for s, v in scores.items()}})
    columns = ["stem", "characteristic", "a", "b", *LOCALIZATION_SCORES]
    loo_columns = ["stem", "characteristic", "a", "reference_raters", *LOCALIZATION_SCORES]
    return LocalizationTables(pd.DataFrame(pair_rows, columns=columns), pd.DataFrame(loo_rows, columns=loo_columns))
