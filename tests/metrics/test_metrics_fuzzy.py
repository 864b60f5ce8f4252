"""Fuzzy confusion counts and scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from dermx.metrics import (
    dice,
    fuzzy_confusion,
    iou,
    npv,
    precision,
    sensitivity,
    specificity,
)

SCORES = {
    "sensitivity": sensitivity,
    "specificity": specificity,
    "precision": precision,
    "npv": npv,
    "iou": iou,
    "dice": dice,
}
TNORMS = ("min", "product")

membership = arrays(np.float64, (3, 4), elements=st.floats(0, 1))
pair = st.tuples(membership, membership).map(lambda t: (torch.from_numpy(t[0]), torch.from_numpy(t[1])))


def _value(fn, p: torch.Tensor, y: torch.Tensor, tnorm: str = "min") -> float:
    return fn(p, y, tnorm=tnorm).values.item()


@pytest.mark.parametrize("tnorm", TNORMS)
def test_binary_inputs_give_crisp_confusion_and_scores(tnorm: str) -> None:
    g = torch.Generator().manual_seed(0)
    p = torch.rand(6, 9, 7, generator=g) > 0.5
    y = torch.rand(6, 9, 7, generator=g) > 0.6
    conf = fuzzy_confusion(p, y, tnorm=tnorm)
    for i in range(6):
        tn, fp, fn, tp = sk_confusion_matrix(y[i].flatten(), p[i].flatten(), labels=[False, True]).ravel()
        assert (conf.tp[i], conf.fp[i], conf.fn[i], conf.tn[i]) == (tp, fp, fn, tn)
        crisp = {
            "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp),
            "precision": tp / (tp + fp),
            "npv": tn / (tn + fn),
            "iou": tp / (tp + fp + fn),
            "dice": 2 * tp / (2 * tp + fp + fn),
        }
        for name, fn_ in SCORES.items():
            assert fn_(p[i], y[i], tnorm=tnorm).values.item() == pytest.approx(crisp[name]), name


def test_hand_computed_min_tnorm() -> None:
    y = torch.tensor([[1.0, 0.5], [0.0, 0.25]])
    p = torch.tensor([[0.5, 0.5], [0.25, 1.0]])
    conf = fuzzy_confusion(p, y)
    # TP = min(1,.5)+min(.5,.5)+min(0,.25)+min(.25,1) = .5+.5+0+.25
    assert conf.tp.item() == pytest.approx(1.25)
    # FP = min(1-y, p) = min(0,.5)+min(.5,.5)+min(1,.25)+min(.75,1) = 0+.5+.25+.75
    assert conf.fp.item() == pytest.approx(1.5)
    # FN = min(y, 1-p) = min(1,.5)+min(.5,.5)+min(0,.75)+min(.25,0) = .5+.5+0+0
    assert conf.fn.item() == pytest.approx(1.0)
    # TN = min(1-y, 1-p) = min(0,.5)+min(.5,.5)+min(1,.75)+min(.75,0) = 0+.5+.75+0
    assert conf.tn.item() == pytest.approx(1.25)
    # Σy = 1.75, Σ(1-y) = 2.25, Σp = 2.25, Σ(1-p) = 1.75, Σmax(y,p) = 1+.5+.25+1 = 2.75
    expected = {
        "sensitivity": 1.25 / 1.75,
        "specificity": 1.25 / 2.25,
        "precision": 1.25 / 2.25,
        "npv": 1.25 / 1.75,
        "iou": 1.25 / 2.75,
        "dice": 2 * 1.25 / (1.75 + 2.25),
    }
    for name, fn in SCORES.items():
        assert _value(fn, p, y) == pytest.approx(expected[name]), name


def test_hand_computed_product_tnorm() -> None:
    y = torch.tensor([[1.0, 0.5], [0.0, 0.25]])
    p = torch.tensor([[0.5, 0.5], [0.25, 1.0]])
    conf = fuzzy_confusion(p, y, tnorm="product")
    # TP = Σ y·p = .5+.25+0+.25 = 1.0; FP = Σ (1-y)·p = 0+.25+.25+.75 = 1.25
    # FN = Σ y·(1-p) = .5+.25+0+0 = .75; TN = Σ (1-y)(1-p) = 0+.25+.75+0 = 1.0
    assert [conf.tp.item(), conf.fp.item(), conf.fn.item(), conf.tn.item()] == pytest.approx([1.0, 1.25, 0.75, 1.0])
    # union = Σ (y + p - y·p) = 1.75 + 2.25 - 1.0 = 3.0
    assert conf.union.item() == pytest.approx(3.0)
    expected = {
        "sensitivity": 1.0 / 1.75,
        "specificity": 1.0 / 2.25,
        "precision": 1.0 / 2.25,
        "npv": 1.0 / 1.75,
        "iou": 1.0 / 3.0,
        "dice": 2 * 1.0 / (1.75 + 2.25),
    }
    for name, fn in SCORES.items():
        assert _value(fn, p, y, "product") == pytest.approx(expected[name]), name


@settings(max_examples=60, deadline=None)
@given(pair, st.sampled_from(TNORMS))
def test_scores_lie_in_unit_interval(maps: tuple[torch.Tensor, torch.Tensor], tnorm: str) -> None:
    p, y = maps
    for fn in SCORES.values():
        v = _value(fn, p, y, tnorm)
        assert math.isnan(v) or -1e-12 <= v <= 1 + 1e-12


@settings(max_examples=60, deadline=None)
@given(pair, st.sampled_from(TNORMS))
def test_dice_and_iou_are_symmetric_and_roles_swap(maps: tuple[torch.Tensor, torch.Tensor], tnorm: str) -> None:
    p, y = maps
    for fn in (dice, iou):
        assert _value(fn, p, y, tnorm) == pytest.approx(_value(fn, y, p, tnorm), nan_ok=True)
    assert _value(sensitivity, p, y, tnorm) == pytest.approx(_value(precision, y, p, tnorm), nan_ok=True)
    assert _value(specificity, p, y, tnorm) == pytest.approx(_value(npv, y, p, tnorm), nan_ok=True)


@settings(max_examples=60, deadline=None)
@given(pair, st.sampled_from(TNORMS))
def test_dice_is_harmonic_mean_of_precision_and_sensitivity(
    maps: tuple[torch.Tensor, torch.Tensor], tnorm: str
) -> None:
    p, y = maps
    assume(fuzzy_confusion(p, y, tnorm=tnorm).tp.item() > 1e-6)
    prec, sens = _value(precision, p, y, tnorm), _value(sensitivity, p, y, tnorm)
    assert _value(dice, p, y, tnorm) == pytest.approx(2 * prec * sens / (prec + sens))


@settings(max_examples=60, deadline=None)
@given(membership)
def test_identical_maps_score_one_with_min_tnorm(y_np: np.ndarray) -> None:
    y = torch.from_numpy(y_np)
    for name, fn in SCORES.items():
        v = _value(fn, y, y)
        assert math.isnan(v) or v == pytest.approx(1.0), name


@settings(max_examples=60, deadline=None)
@given(pair, membership, st.sampled_from(TNORMS))
def test_raising_the_prediction_is_monotone(
    maps: tuple[torch.Tensor, torch.Tensor], raise_np: np.ndarray, tnorm: str
) -> None:
    p, y = maps
    assume(0 < y.sum().item() < y.numel())  # sensitivity and specificity defined
    higher = p + (1 - p) * torch.from_numpy(raise_np)  # p <= higher <= 1
    assert _value(sensitivity, higher, y, tnorm) >= _value(sensitivity, p, y, tnorm) - 1e-12
    assert _value(specificity, higher, y, tnorm) <= _value(specificity, p, y, tnorm) + 1e-12
    # raising p only where y = 0 adds to Σp but not to TP: precision cannot rise
    crisp_y = (y > 0.5).double()
    off_target = torch.where(crisp_y == 0, higher, p)
    before, after = _value(precision, p, crisp_y, tnorm), _value(precision, off_target, crisp_y, tnorm)
    assert math.isnan(before) or after <= before + 1e-12


def test_zero_denominators_are_nan_and_counted() -> None:
    empty = torch.zeros(4, 4)
    full = torch.ones(4, 4)
    half = torch.full((4, 4), 0.5)
    p = torch.stack([empty, half, full])
    y = torch.stack([empty, empty, full])
    sens = sensitivity(p, y)
    assert sens.undefined.tolist() == [True, True, False]
    assert sens.n_undefined == 2
    assert sens.n == 3
    assert math.isnan(sens.values[0]) and math.isnan(sens.values[1])
    assert sens.values[2] == 1.0
    # both maps empty: IoU and Dice undefined; Dice 0 when only the reference is empty
    assert dice(p, y).undefined.tolist() == [True, False, False]
    assert dice(p, y).values[1] == 0.0
    assert iou(p, y).n_undefined == 1
    # a reference that is 1 everywhere has no negatives: specificity undefined
    assert specificity(p, y).undefined.tolist() == [False, False, True]
    assert npv(p, y).undefined.tolist() == [False, False, True]
    assert precision(p, y).undefined.tolist() == [True, False, False]


def test_broadcast_raters_against_consensus() -> None:
    g = torch.Generator().manual_seed(1)
    B, T, R, H, W = 2, 3, 4, 5, 6
    p = torch.rand(B, T, R, H, W, generator=g)
    y = torch.rand(B, T, H, W, generator=g)
    for name, fn in SCORES.items():
        batched = fn(p, y.unsqueeze(2)).values
        assert batched.shape == (B, T, R)
        for b, t, r in np.ndindex(B, T, R):
            assert batched[b, t, r].item() == pytest.approx(fn(p[b, t, r], y[b, t]).values.item()), name
    # broadcasting works either way round and on size-1 dims of both arguments
    assert dice(y.unsqueeze(2), p).values.shape == (B, T, R)
    assert dice(p[:, :1], y[:1, :1, None]).values.shape == (B, 1, R)


@pytest.mark.parametrize(
    ("p", "y", "message"),
    [
        (torch.full((2, 2), 1.5), torch.zeros(2, 2), r"prediction must lie in \[0, 1\]"),
        (torch.zeros(2, 2), torch.full((2, 2), -0.1), r"reference must lie in \[0, 1\]"),
        (torch.tensor([[0.0, float("nan")]]), torch.zeros(1, 2), "prediction contains NaN"),
        (torch.zeros(1, 2), torch.tensor([[float("nan"), 0.0]]), "reference contains NaN"),
        (torch.zeros(3, 4, 4), torch.zeros(2, 4, 4), "do not broadcast"),
        (torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4), "different numbers of dims"),
        (torch.zeros(4, 4), torch.zeros(4, 5), "grid"),
        (torch.zeros(4), torch.zeros(4), "at least 2 dims"),
    ],
)
def test_bad_inputs_raise(p: torch.Tensor, y: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dice(p, y)


def test_bad_tnorm_and_type_raise() -> None:
    with pytest.raises(ValueError, match="tnorm"):
        fuzzy_confusion(torch.zeros(2, 2), torch.zeros(2, 2), tnorm="lukasiewicz")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"prediction must be a torch\.Tensor"):
        dice(np.zeros((2, 2)), torch.zeros(2, 2))  # type: ignore[arg-type]
