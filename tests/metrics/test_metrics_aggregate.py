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


def test_a_cluster_bootstrap_resamples_patients_not_their_images() -> None:
    """Twenty patients with three identical images each: resampling images pretends to 60 independent
    values; resampling patients gives exactly the interval of the 20 patients' own values."""
    from dermx.metrics import resample_counts

    per_patient = torch.rand(20, generator=torch.Generator().manual_seed(1)).double()
    images = per_patient.repeat_interleave(3)
    patients = [f"p{k:02d}" for k in range(20) for _ in range(3)]
    clustered = bootstrap_ci(images, n_boot=2000, seed=3, clusters=patients)
    own = bootstrap_ci(per_patient, n_boot=2000, seed=3)
    assert (clustered.low.item(), clustered.high.item()) == pytest.approx((own.low.item(), own.high.item()))
    naive = bootstrap_ci(images, n_boot=2000, seed=3)
    assert clustered.high - clustered.low > 1.5 * (naive.high - naive.low)  # about √3 wider
    counts = resample_counts(6, n_boot=4, seed=0, clusters=["a", "a", "b", "b", "b", "c"])
    assert torch.equal(counts[:, 0], counts[:, 1]) and torch.equal(counts[:, 2], counts[:, 4])
    assert (counts[:, [0, 2, 5]].sum(dim=1) == 3).all()  # three patients drawn per resample
    paired = paired_bootstrap_ci(images, images - 0.1, n_boot=200, seed=0, clusters=patients)
    assert paired.estimate.item() == pytest.approx(0.1) and paired.low.item() == pytest.approx(0.1)
    with pytest.raises(ValueError, match="one label per row"):
        resample_counts(6, n_boot=4, seed=0, clusters=["a", "b"])


@pytest.mark.parametrize("clusters", [None, [f"p{i // 3}" for i in range(250)]])
def test_resample_blocks_are_the_rows_of_one_draw(clusters: list[str] | None) -> None:
    """Blocks of any size concatenate to resample_counts' matrix (the generator's stream is read in row
    order), so a statistic evaluated block by block (resampled) gives the values of one call on it."""
    from dermx.metrics import resample_blocks, resample_counts, resampled

    whole = resample_counts(250, n_boot=1000, seed=4, clusters=clusters)
    for block in (1, 7, 100, 999, 1000, 5000):
        parts = list(resample_blocks(250, n_boot=1000, seed=4, clusters=clusters, block=block))
        assert len(parts) == -(-1000 // block) and torch.equal(torch.cat(parts), whole)
    values = torch.linspace(0, 1, 250, dtype=torch.float64)
    means = resampled(lambda counts: (counts @ values) / counts.sum(dim=1), 250, n_boot=1000, seed=4,
                      clusters=clusters)
    assert means.shape == (1000,) and torch.allclose(means, (whole @ values) / whole.sum(dim=1), rtol=0, atol=1e-15)


def test_wilson_interval_hand_cases() -> None:
    from dermx.metrics import wilson_interval

    # 0 of 10: (0, z² / (n + z²)) = (0, 3.8415 / 13.8415)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(1.959964**2 / (10 + 1.959964**2), abs=1e-6)
    low, high = wilson_interval(8, 10)  # published worked value: [0.490, 0.943]
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    low, high = wilson_interval(10, 10)
    assert high == pytest.approx(1.0) and low == pytest.approx(0.7225, abs=1e-4)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
