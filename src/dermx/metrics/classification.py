r"""Classification scores for diagnosis and characteristic identification, labels by name.

Labels are always given as names in a fixed order passed by the caller (e.g.
:data:`dermx.vocab.DIAGNOSES`), never inferred from the data; a value outside the allowed names
raises ``ValueError``. scikit-learn builds the confusion matrices; the scores are computed from its
counts so that a zero denominator gives NaN, flagged and counted in :class:`~dermx.metrics.Scores`,
instead of sklearn's ``zero_division`` constant.

Per label, one-vs-rest, from the counts TP, FP, FN, TN (n = TP + FP + FN + TN)::

    precision = TP / (TP + FP)                undefined if the label is never predicted
    recall    = TP / (TP + FN)                undefined if the label never occurs in y_true
    F1        = 2·TP / (2·TP + FP + FN)       undefined if the label occurs in neither
    kappa     = 2·(TP·TN − FN·FP) / ((TP + FP)·(FP + TN) + (TP + FN)·(FN + TN))

(Cohen's kappa of the binary table, (p_o − p_e) / (1 − p_e); undefined when p_e = 1, e.g. every item
a true negative.) Macro scores are unweighted means over the labels whose score is defined, as
:class:`~dermx.metrics.Summary` with the number of labels averaged and left out.

Multiclass Cohen's kappa from the confusion matrix C (rows y_true, columns y_pred), with row sums r
and column sums c: ``kappa = (n·ΣC_kk − Σ r_k·c_k) / (n² − Σ r_k·c_k)``; accuracy = ΣC_kk / n.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import multilabel_confusion_matrix
from torch import Tensor

from dermx.metrics.aggregate import Summary, summarize
from dermx.metrics.scores import Scores, ratio


@dataclass(frozen=True)
class LabelScores:
    """One-vs-rest counts and scores per label, aligned with ``labels`` (formulas in the module doc)."""

    labels: tuple[str, ...]
    tp: Tensor
    fp: Tensor
    fn: Tensor
    tn: Tensor
    precision: Scores
    recall: Scores
    f1: Scores
    kappa: Scores

    @property
    def support(self) -> Tensor:
        """Occurrences of each label in ``y_true``: TP + FN."""
        return self.tp + self.fn

    def macro(self) -> dict[str, Summary]:
        """Macro precision, recall, F1 and kappa: means over the labels where each is defined."""
        return {name: summarize(getattr(self, name).values) for name in ("precision", "recall", "f1", "kappa")}


@dataclass(frozen=True)
class DiagnosisScores:
    """Scores of single-label predictions against reference labels.

    ``per_class`` holds the one-vs-rest scores of the scored ``labels``; ``confusion`` is the
    confusion matrix over ``labels`` followed by ``other_labels`` (rows y_true, columns y_pred);
    ``kappa`` is the multiclass Cohen's kappa over all those labels (NaN if undefined) and
    ``accuracy`` the share of exact matches.
    """

    per_class: LabelScores
    confusion: np.ndarray
    kappa: float
    accuracy: float


def _check_labels(labels: Sequence[str]) -> tuple[str, ...]:
    names = tuple(labels)
    if not names:
        raise ValueError("labels is empty")
    if len(set(names)) != len(names):
        raise ValueError(f"labels has duplicate names: {names}")
    return names


def _check_names(name: str, values: Sequence[str], allowed: tuple[str, ...]) -> list[str]:
    items = list(values)
    unknown = sorted(set(items) - set(allowed))
    if unknown:
        raise ValueError(f"{name} holds names not in the given labels: {unknown}")
    return items


def _label_scores(labels: tuple[str, ...], tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor) -> LabelScores:
    tp, fp, fn, tn = (x.to(torch.float64) for x in (tp, fp, fn, tn))
    return LabelScores(
        labels=labels,
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        precision=ratio(tp, tp + fp),
        recall=ratio(tp, tp + fn),
        f1=ratio(2 * tp, 2 * tp + fp + fn),
        kappa=ratio(2 * (tp * tn - fn * fp), (tp + fp) * (fp + tn) + (tp + fn) * (fn + tn)),
    )


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Confusion matrix ``C[i, j]`` = number of items with ``y_true = labels[i]``, ``y_pred = labels[j]``."""
    names = _check_labels(labels)
    truth = _check_names("y_true", y_true, names)
    pred = _check_names("y_pred", y_pred, names)
    if len(truth) != len(pred):
        raise ValueError(f"y_true has {len(truth)} items but y_pred has {len(pred)}")
    if not truth:
        raise ValueError("y_true is empty")
    return sk_confusion_matrix(truth, pred, labels=list(names))


def diagnosis_scores(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    labels: Sequence[str],
    *,
    other_labels: Sequence[str] = (),
) -> DiagnosisScores:
    """Per-class and multiclass scores of predicted diagnoses against reference diagnoses.

    ``labels`` are the scored classes in their fixed order (macro scores average over them).
    ``other_labels`` are legitimate answers that are not scored classes (e.g. ``"Other-disease"``
    from a rater): they count as misses of the true class and enter the confusion matrix and the
    multiclass kappa, but get no per-class score.
    """
    scored = _check_labels(labels)
    names = _check_labels((*scored, *other_labels))
    counts = torch.as_tensor(confusion_matrix(y_true, y_pred, names), dtype=torch.float64)
    n = counts.sum()
    diag = counts.diagonal()
    rows, cols = counts.sum(1), counts.sum(0)
    k = len(scored)
    tp = diag[:k]
    fp, fn = cols[:k] - tp, rows[:k] - tp
    per_class = _label_scores(scored, tp, fp, fn, n - tp - fp - fn)
    chance = (rows * cols).sum()
    kappa = ratio(n * diag.sum() - chance, n * n - chance).values.item()
    return DiagnosisScores(
        per_class=per_class,
        confusion=counts.to(torch.int64).numpy(),
        kappa=kappa,
        accuracy=(diag.sum() / n).item(),
    )


def identification_scores(
    y_true: np.ndarray | Tensor, y_pred: np.ndarray | Tensor, labels: Sequence[str]
) -> LabelScores:
    """Per-label scores of binary multi-label answers, e.g. "characteristic outlined or tagged".

    ``y_true`` and ``y_pred`` are ``(n_items, len(labels))`` arrays of 0/1 or bool, column ``j``
    answering ``labels[j]``.
    """
    names = _check_labels(labels)
    arrays = []
    for name, value in (("y_true", y_true), ("y_pred", y_pred)):
        a = value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)
        if a.ndim != 2 or a.shape[1] != len(names) or a.shape[0] == 0:
            raise ValueError(f"{name} must have shape (n_items > 0, {len(names)}), got {a.shape}")
        if not np.isin(a, (0, 1)).all():
            raise ValueError(f"{name} must hold only 0/1 or bool values")
        arrays.append(a.astype(np.int64))
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(f"y_true shape {arrays[0].shape} and y_pred shape {arrays[1].shape} differ")
    counts = torch.as_tensor(multilabel_confusion_matrix(*arrays))  # (k, 2, 2): [[TN, FP], [FN, TP]]
    return _label_scores(names, counts[:, 1, 1], counts[:, 0, 1], counts[:, 1, 0], counts[:, 0, 0])
