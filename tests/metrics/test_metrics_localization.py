"""Pointing game, energy-based pointing, weighted ROC AUC and the metric registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import roc_auc_score

from dermx.metrics import (
    METRICS,
    Scores,
    energy_pointing,
    fuzzy_pointing_game,
    metric_info,
    pointing_game,
    roc_auc,
    sensitivity,
)
from dermx.metrics.localization import dilate


def _sklearn_weighted_auc(s: np.ndarray, y: np.ndarray) -> float:
    """Every pixel twice: label 1 with weight y, label 0 with weight 1 - y."""
    s, y = s.ravel(), y.ravel()
    labels = np.r_[np.ones_like(y), np.zeros_like(y)]
    return roc_auc_score(labels, np.r_[s, s], sample_weight=np.r_[y, 1 - y])


def test_pointing_game_hand_cases() -> None:
    """The fuzzy variant takes the membership at the maximum; the papers' pointing game a 0/1 hit on the
    reference outlined by anyone (y > 0), within the tolerance."""
    y = torch.zeros(5, 5)
    y[2, 2] = 0.5
    y[0, 0] = 0.8
    s = torch.zeros(5, 5)
    s[2, 2] = 1.0
    # maximum at (2, 2), where y = 0.5
    assert fuzzy_pointing_game(s, y).values.item() == 0.5 and pointing_game(s, y).values.item() == 1.0
    s2 = torch.zeros(5, 5)
    s2[1, 1] = 1.0
    # maximum at (1, 1): y = 0 there; (0, 0) with y = .8 is at distance √2 ≈ 1.41, (2, 2) with y = .5 too
    assert fuzzy_pointing_game(s2, y).values.item() == 0.0 == pointing_game(s2, y).values.item()
    assert fuzzy_pointing_game(s2, y, tolerance=1).values.item() == 0.0  # a disc, not a square
    assert pointing_game(s2, y, tolerance=1).values.item() == 0.0
    assert fuzzy_pointing_game(s2, y, tolerance=1.5).values.item() == pytest.approx(0.8)
    assert pointing_game(s2, y, tolerance=1.5).values.item() == 1.0
    # ties: a constant map scores the mean membership over all pixels, (0.5 + 0.8) / 25, and the share of
    # pixels a random tie-break would hit, 2 / 25
    assert fuzzy_pointing_game(torch.ones(5, 5), y).values.item() == pytest.approx(1.3 / 25)
    assert pointing_game(torch.ones(5, 5), y).values.item() == pytest.approx(2 / 25)
    # two tied maxima at (2, 2) and (4, 4): (0.5 + 0) / 2, and one hit in two
    s3 = s.clone()
    s3[4, 4] = 1.0
    assert fuzzy_pointing_game(s3, y).values.item() == pytest.approx(0.25)
    assert pointing_game(s3, y).values.item() == pytest.approx(0.5)


def test_pointing_game_undefined_on_empty_reference() -> None:
    s = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(3, 4, 4)
    y[1, 0, 0] = 1.0
    result = pointing_game(s, y, tolerance=2)
    assert result.undefined.tolist() == [True, False, True]
    assert result.n_undefined == 2
    assert not math.isnan(result.values[1])


@pytest.mark.parametrize("radius", [0.0, 1.0, 1.5, 2.3, 3.0, 12.0])
def test_dilate_matches_brute_force_disc(radius: float) -> None:
    y = torch.rand(2, 7, 9, generator=torch.Generator().manual_seed(3)).double()
    got = dilate(y, radius)
    yy = y.numpy()
    for b, i, j in np.ndindex(*yy.shape):
        near = [
            yy[b, a, c]
            for a in range(yy.shape[1])
            for c in range(yy.shape[2])
            if (a - i) ** 2 + (c - j) ** 2 <= radius**2
        ]
        assert got[b, i, j].item() == max(near)


def test_energy_pointing_hand_case_and_undefined() -> None:
    s = torch.tensor([[[0.0, 2.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])
    y = torch.tensor([[1.0, 0.5], [0.0, 1.0]])
    result = energy_pointing(s, y.expand(2, 2, 2))
    # Σ s·y / Σ s = (0·1 + 2·.5 + 1·0 + 1·1) / (0 + 2 + 1 + 1) = 2 / 4
    assert result.values[0].item() == pytest.approx(0.5)
    assert result.undefined.tolist() == [False, True]
    with pytest.raises(ValueError, match="saliency must be non-negative"):
        energy_pointing(-s, y.expand(2, 2, 2))



def test_energy_pointing_undefined_on_empty_reference_like_the_other_scores() -> None:
    """An empty reference (Σy = 0) is undefined for every score, energy included (it used to give 0)."""
    s = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(2, 4, 4)
    y[1, 1:3, 1:3] = 1.0
    energy = energy_pointing(s, y)
    assert energy.undefined.tolist() == [True, False] and energy.n_undefined == 1
    assert math.isnan(energy.values[0]) and energy.values[1] == pytest.approx((s[1] * y[1]).sum() / s[1].sum())
    for other in (pointing_game(s, y), roc_auc(s, y), sensitivity(s, y)):
        assert other.undefined.tolist() == energy.undefined.tolist()


def test_pointing_game_on_a_grid_without_pixels_raises_a_value_error() -> None:
    for shape in [(2, 0, 4), (2, 3, 0)]:
        with pytest.raises(ValueError, match="at least one pixel"):
            pointing_game(torch.zeros(shape), torch.zeros(shape))

def test_roc_auc_hand_cases() -> None:
    # binary: positives score .9, .5; negatives .1, .5; pairs 1 + 1 + 1 + ½ (tie) out of 4
    s = torch.tensor([[0.9, 0.1], [0.5, 0.5]])
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert roc_auc(s, y).values.item() == pytest.approx(3.5 / 4)
    # fuzzy: y = (1, .5), s = (1, 0). Pairs y_i·(1 - y_j)·credit:
    # (1 over 2): 1·.5·1 = .5; (2 over 1): .5·0·0 = 0; self-ties ½·y(1-y): 0 and ½·.5·.5 = .125
    # denominator Σy·Σ(1-y) = 1.5·.5 = .75
    assert roc_auc(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.5]])).values.item() == pytest.approx(0.625 / 0.75)


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, (4, 5), elements=st.sampled_from([0.0, 0.25, 0.5, 1.0])),
    arrays(np.float64, (4, 5), elements=st.floats(0, 1)),
)
def test_roc_auc_matches_sklearn_with_ties(s: np.ndarray, y: np.ndarray) -> None:
    result = roc_auc(torch.from_numpy(s), torch.from_numpy(y))
    if y.sum() == 0 or (1 - y).sum() == 0:
        assert result.n_undefined == 1
    else:
        assert result.values.item() == pytest.approx(_sklearn_weighted_auc(s, y), abs=1e-9)



def test_roc_auc_memberships_within_rounding_of_one() -> None:
    """Negative weights 1 − y ≈ 1e-16 must not cancel (hypothesis found 0.505 for sklearn's 0.5; a
    single such pixel gave NaN)."""
    s = np.full((4, 5), 0.25)
    s[0, 0] = 0.0
    for below_one in ([(0, 0)], [(0, 0), (2, 3)], [(1, 1), (3, 4)]):
        y = np.ones((4, 5))
        for pixel in below_one:
            y[pixel] = np.nextafter(1.0, 0.0)
        result = roc_auc(torch.from_numpy(s), torch.from_numpy(y))
        assert result.n_undefined == 0
        assert result.values.item() == pytest.approx(_sklearn_weighted_auc(s, y), abs=1e-9)

def test_roc_auc_batched_broadcast_matches_sklearn() -> None:
    g = torch.Generator().manual_seed(2)
    B, T, R, H, W = 2, 3, 4, 8, 8
    s = torch.rand(B, T, 1, H, W, generator=g).round(decimals=1)  # with ties
    y = (torch.rand(B, T, R, H, W, generator=g) * 4).round() / 4
    result = roc_auc(s, y)
    assert result.values.shape == (B, T, R)
    assert result.values.dtype == torch.float32
    for b, t, r in np.ndindex(B, T, R):
        expected = _sklearn_weighted_auc(s[b, t, 0].numpy(), y[b, t, r].numpy())
        assert result.values[b, t, r].item() == pytest.approx(expected, abs=1e-6)
    # binary masks give the ordinary AUC
    mask = y[0, 0, 0] > 0.5
    assert roc_auc(s[0, 0, 0], mask).values.item() == pytest.approx(
        roc_auc_score(mask.flatten().numpy(), s[0, 0, 0].flatten().numpy())
    )


def test_roc_auc_undefined_without_positives_or_negatives() -> None:
    y = torch.stack([torch.zeros(3, 3), torch.ones(3, 3), torch.eye(3)])
    result = roc_auc(torch.rand(3, 3, 3, generator=torch.Generator().manual_seed(0)), y)
    assert result.undefined.tolist() == [True, True, False]
    assert result.n_undefined == 2


@pytest.mark.parametrize("fn", [pointing_game, energy_pointing, roc_auc])
def test_localization_bad_inputs_raise(fn) -> None:
    with pytest.raises(ValueError, match="saliency contains infinite"):
        fn(torch.tensor([[float("inf"), 0.0]]), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="saliency contains NaN"):
        fn(torch.tensor([[float("nan"), 0.0]]), torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"reference must lie in \[0, 1\]"):
        fn(torch.zeros(1, 2), torch.tensor([[2.0, 0.0]]))
    with pytest.raises(ValueError, match="do not broadcast"):
        fn(torch.zeros(2, 3, 3), torch.zeros(3, 3, 3))


def test_negative_tolerance_raises() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        pointing_game(torch.zeros(2, 2), torch.zeros(2, 2), tolerance=-1)


def test_registry_declares_range_and_direction() -> None:
    g = torch.Generator().manual_seed(4)
    s, y = torch.rand(3, 6, 6, generator=g), torch.rand(3, 6, 6, generator=g)
    for name, info in METRICS.items():
        assert info.name == name
        assert metric_info(name) is info
        result = info.fn(s, y)
        assert isinstance(result, Scores)
        low, high = info.range
        assert ((result.values >= low) & (result.values <= high)).all(), name
        assert info.higher_is_better
    with pytest.raises(ValueError, match="unknown metric 'hausdorff'"):
        metric_info("hausdorff")
