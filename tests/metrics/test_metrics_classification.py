"""Classification scores with labels by name."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, precision_recall_fscore_support
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from dermx.metrics import confusion_matrix, diagnosis_scores, identification_scores
from dermx.vocab import DIAGNOSES, OTHER_DISEASE


def test_diagnosis_hand_case() -> None:
    labels = ["Acne", "Psoriasis", "Vitiligo"]
    truth = ["Acne", "Acne", "Psoriasis", "Psoriasis"]
    pred = ["Acne", "Psoriasis", "Psoriasis", OTHER_DISEASE]
    d = diagnosis_scores(truth, pred, labels, other_labels=[OTHER_DISEASE])
    # Acne: TP 1, FP 0, FN 1, TN 2 -> precision 1/1, recall 1/2, F1 2/(2+0+1)
    # Psoriasis: TP 1, FP 1, FN 1, TN 1 -> precision 1/2, recall 1/2, F1 2/(2+1+1)
    # Vitiligo: never true, never predicted -> precision, recall, F1 undefined
    pc = d.per_class
    assert pc.tp.tolist() == [1, 1, 0]
    assert pc.support.tolist() == [2, 2, 0]
    np.testing.assert_allclose(pc.precision.values[:2], [1.0, 0.5])
    np.testing.assert_allclose(pc.recall.values[:2], [0.5, 0.5])
    np.testing.assert_allclose(pc.f1.values[:2], [2 / 3, 0.5])
    assert pc.f1.undefined.tolist() == [False, False, True]
    # Acne one-vs-rest kappa: 2(TP·TN - FN·FP) / ((TP+FP)(FP+TN) + (TP+FN)(FN+TN)) = 2(2 - 0) / (1·2 + 2·3)
    assert pc.kappa.values[0].item() == pytest.approx(4 / 8)
    macro = pc.macro()
    assert macro["f1"].mean == pytest.approx((2 / 3 + 0.5) / 2)
    assert (macro["f1"].n, macro["f1"].n_undefined) == (2, 1)
    # confusion over labels + other labels (rows truth, columns prediction)
    assert d.confusion.tolist() == [[1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert d.accuracy == pytest.approx(2 / 4)
    # multiclass kappa: n = 4, trace 2, Σ r·c = 2·1 + 2·2 + 0 + 0·1 = 6 -> (4·2 - 6) / (16 - 6)
    assert d.kappa == pytest.approx(0.2)


def test_diagnosis_matches_sklearn_where_defined() -> None:
    rng = np.random.default_rng(0)
    labels = list(DIAGNOSES)
    truth = list(rng.choice(labels[:5], size=80))  # Vitiligo never occurs
    pred = list(rng.choice([*labels[:4], OTHER_DISEASE], size=80))  # Viral warts, Vitiligo never predicted
    d = diagnosis_scores(truth, pred, labels, other_labels=[OTHER_DISEASE])
    p, r, f, _ = precision_recall_fscore_support(truth, pred, labels=labels, zero_division=np.nan)
    np.testing.assert_allclose(d.per_class.precision.values, p)
    np.testing.assert_allclose(d.per_class.recall.values, r)
    assert d.per_class.precision.n_undefined == 2
    assert d.per_class.recall.n_undefined == 1
    assert d.per_class.f1.n_undefined == 1  # Viral warts: never predicted but occurs -> F1 = 0, defined
    np.testing.assert_allclose(d.per_class.f1.values[:5], f[:5])
    all_labels = [*labels, OTHER_DISEASE]
    assert d.kappa == pytest.approx(cohen_kappa_score(truth, pred, labels=all_labels))
    np.testing.assert_array_equal(d.confusion, sk_confusion_matrix(truth, pred, labels=all_labels))
    for k, name in enumerate(labels[:5]):
        ovr = cohen_kappa_score([t == name for t in truth], [q == name for q in pred])
        assert d.per_class.kappa.values[k].item() == pytest.approx(ovr)


def test_label_order_is_the_given_order() -> None:
    truth = ["Acne", "Vitiligo", "Vitiligo"]
    pred = ["Acne", "Acne", "Vitiligo"]
    forward = diagnosis_scores(truth, pred, ["Acne", "Vitiligo"])
    backward = diagnosis_scores(truth, pred, ["Vitiligo", "Acne"])
    assert backward.per_class.labels == ("Vitiligo", "Acne")
    np.testing.assert_allclose(backward.per_class.f1.values, forward.per_class.f1.values.flip(0))
    np.testing.assert_array_equal(backward.confusion, forward.confusion[::-1, ::-1])


def test_bad_labels_raise() -> None:
    with pytest.raises(ValueError, match=r"y_pred holds names not in the given labels: \['Acen'\]"):
        diagnosis_scores(["Acne"], ["Acen"], ["Acne"])
    with pytest.raises(ValueError, match="y_true has 2 items but y_pred has 1"):
        confusion_matrix(["Acne", "Acne"], ["Acne"], ["Acne"])
    with pytest.raises(ValueError, match="duplicate"):
        confusion_matrix(["Acne"], ["Acne"], ["Acne", "Acne"])
    with pytest.raises(ValueError, match="y_true is empty"):
        confusion_matrix([], [], ["Acne"])


def test_kappa_undefined_when_chance_agreement_is_certain() -> None:
    d = diagnosis_scores(["Acne"] * 3, ["Acne"] * 3, ["Acne", "Psoriasis"])
    # p_e = 1 for the multiclass table and for both one-vs-rest tables
    assert math.isnan(d.kappa)
    assert d.per_class.kappa.n_undefined == 2
    assert d.per_class.f1.values[0].item() == 1.0


def test_identification_matches_sklearn_per_label() -> None:
    rng = np.random.default_rng(1)
    truth = rng.random((40, 4)) < 0.4
    pred = rng.random((40, 4)) < 0.4
    truth[:, 3] = False
    pred[:, 3] = False  # label 3: never outlined by either -> precision, recall, F1, kappa undefined
    labels = ["Papule", "Plaque", "Scale", "Scar"]
    s = identification_scores(truth, pred, labels)
    p, r, f, _ = precision_recall_fscore_support(truth, pred, average=None, zero_division=np.nan)
    np.testing.assert_allclose(s.precision.values, p)
    np.testing.assert_allclose(s.recall.values, r)
    np.testing.assert_allclose(s.f1.values, f)
    for j in range(3):
        assert s.kappa.values[j].item() == pytest.approx(cohen_kappa_score(truth[:, j], pred[:, j]))
    assert s.kappa.undefined.tolist() == [False, False, False, True]
    assert s.macro()["kappa"].n == 3


def test_identification_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match=r"y_pred must have shape \(n_items > 0, 2\)"):
        identification_scores(np.zeros((3, 2)), np.zeros((3, 3)), ["Papule", "Plaque"])
    with pytest.raises(ValueError, match="0/1"):
        identification_scores(np.full((3, 2), 0.5), np.zeros((3, 2)), ["Papule", "Plaque"])
