"""NaN-aware summaries and bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dermx.metrics import bootstrap_ci, paired_bootstrap_ci, summarize


def test_summarize_hand_case() -> None:
    s = summarize([1.0, 2.0, 4.0, float("nan")])
    # mean = 7/3; sd = √(((1 - 7/3)² + (2 - 7/3)² + (4 - 7/3)²) / (3 - 1)) = √((16/9 + 1/9 + 25/9) / 2) = √(7/3)
    assert s.mean == pytest.approx(7 / 3)
    assert s.sd == pytest.approx(math.sqrt(7 / 3))
    assert (s.n, s.n_undefined) == (3, 1)


def test_summarize_edge_cases_and_inputs() -> None:
    empty = summarize(torch.tensor([float("nan"), float("nan")]))
    assert math.isnan(empty.mean) and math.isnan(empty.sd)
    assert (empty.n, empty.n_undefined) == (0, 2)
    single = summarize(np.array([[0.5]]))
    assert single.mean == 0.5 and math.isnan(single.sd) and single.n == 1
    with pytest.raises(ValueError, match="infinite"):
        summarize([1.0, float("inf")])


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    values = torch.rand(30, generator=torch.Generator().manual_seed(0))
    a = bootstrap_ci(values, n_boot=500, seed=7)
    b = bootstrap_ci(values, n_boot=500, seed=7)
    c = bootstrap_ci(values, n_boot=500, seed=8)
    assert (a.low.item(), a.high.item()) == (b.low.item(), b.high.item())
    assert (a.low.item(), a.high.item()) != (c.low.item(), c.high.item())
    assert a.low <= a.estimate <= a.high
    assert a.estimate.item() == pytest.approx(values.double().mean().item())


def test_bootstrap_columns_nan_and_constant_values() -> None:
    values = torch.tensor([[0.7, 1.0], [float("nan"), 0.0], [0.7, 1.0], [0.7, float("nan")]])
    ci = bootstrap_ci(values, n_boot=300, seed=0, level=0.9)
    assert ci.n == 4
    assert ci.n_undefined.tolist() == [1, 1]
    # column 0: every defined value is 0.7, so every resample mean is 0.7
    assert (ci.low[0].item(), ci.estimate[0].item(), ci.high[0].item()) == pytest.approx((0.7, 0.7, 0.7))
    assert ci.low[1] < ci.estimate[1] < ci.high[1]


def test_bootstrap_interval_narrows_with_more_rows() -> None:
    rng = np.random.default_rng(0)
    small = bootstrap_ci(rng.random(20), n_boot=400)
    large = bootstrap_ci(rng.random(2000), n_boot=400)
    assert (large.high - large.low) < (small.high - small.low)


def test_paired_bootstrap_difference() -> None:
    rng = np.random.default_rng(1)
    b = rng.random(50)
    a = b + 0.1
    a[3] = np.nan
    ci = paired_bootstrap_ci(a, b, n_boot=300, seed=2)
    assert (ci.low.item(), ci.high.item()) == pytest.approx((0.1, 0.1))
    assert ci.n_undefined.item() == 1
    with pytest.raises(ValueError, match="values_a shape"):
        paired_bootstrap_ci(a, b[:10])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_boot": 0}, "n_boot"), ({"level": 1.0}, "level"), ({"level": 0.0}, "level")],
)
def test_bootstrap_bad_arguments_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bootstrap_ci([0.1, 0.2], **kwargs)
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci([])
