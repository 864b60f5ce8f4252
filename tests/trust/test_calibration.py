"""dermx.trust.calibration: hand-computed cases, and parity with torchmetrics and netcal on the same inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from netcal import metrics as netcal
from torchmetrics.classification import BinaryCalibrationError, MulticlassCalibrationError

from dermx.trust.calibration import (
    brier,
    calibration_report,
    classwise_ece,
    ece,
    fit_temperature,
    fit_temperature_scaling,
    nll,
    reliability,
    scaled_probs,
)

PROBS = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
LABELS = np.array([0, 1, 1, 0])


def _random(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits of a model that is right more often than chance, its probabilities and true classes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k)) * 1.5
    z[np.arange(n), y] += 1.5
    return z, torch.softmax(torch.tensor(z), 1).numpy(), y


def test_nll_and_brier_by_hand() -> None:
    assert nll(PROBS, LABELS) == pytest.approx(-(math.log(0.9) + math.log(0.4) + math.log(0.7) + math.log(0.2)) / 4)
    # per row Σ_k (p_k − y_k)²: 0.02, 0.72, 0.18, 1.28
    assert brier(PROBS, LABELS) == pytest.approx((0.02 + 0.72 + 0.18 + 1.28) / 4)


def test_ece_by_hand() -> None:
    # confidences 0.9 ✓, 0.6 ✗, 0.7 ✓, 0.8 ✗; two equal-width bins [0, .5), [.5, 1]: all in the upper one
    assert ece(PROBS, LABELS, n_bins=2) == pytest.approx(abs(0.5 - 0.75))
    # ten bins: one row per bin at .6, .7, .8, .9: |0 − .6| + |1 − .7| + |0 − .8| + |1 − .9|
    assert ece(PROBS, LABELS, n_bins=10) == pytest.approx((0.6 + 0.3 + 0.8 + 0.1) / 4)
    # equal mass, 2 bins: median edge 0.75 → {0.6 ✗, 0.7 ✓} and {0.8 ✗, 0.9 ✓}
    expected = (2 * abs(0.5 - 0.65) + 2 * abs(0.5 - 0.85)) / 4
    assert ece(PROBS, LABELS, n_bins=2, binning="mass") == pytest.approx(expected)
    bins = reliability(PROBS, LABELS, n_bins=2)
    assert bins.count.tolist() == [0, 4] and math.isnan(bins.accuracy[0]) and bins.accuracy[1] == 0.5


def test_classwise_ece_by_hand() -> None:
    # class 0: p = .9 .6 .3 .2 against 1 0 0 1; class 1: p = .1 .4 .7 .8 against 0 1 1 0; one bin each
    per_class = [abs(0.5 - 0.5), abs(0.5 - 0.5)]
    assert classwise_ece(PROBS, LABELS, n_bins=1) == pytest.approx(np.mean(per_class))
    # two bins: class 0 {.3 .2 | 0 1} {.9 .6 | 1 0}: (2·|.5 − .25| + 2·|.5 − .75|)/4 = .25; class 1 the same
    assert classwise_ece(PROBS, LABELS, n_bins=2) == pytest.approx(0.25)


def test_a_confidence_of_one_is_in_the_last_bin() -> None:
    assert ece([[1.0, 0.0], [0.95, 0.05]], [0, 1], n_bins=10) == pytest.approx((0.0 + 0.95) / 2)


@pytest.mark.parametrize("n_bins", [5, 15])
def test_ece_matches_torchmetrics_and_netcal(n_bins: int) -> None:
    _, p, y = _random(3000, 5, seed=0)
    ours = ece(p, y, n_bins=n_bins)
    tm = MulticlassCalibrationError(num_classes=5, n_bins=n_bins, norm="l1")(torch.tensor(p), torch.tensor(y)).item()
    nc = netcal.ECE(bins=n_bins).measure(p, y)
    assert abs(ours - tm) < 1e-6  # torchmetrics computes in float32
    assert abs(ours - nc) < 1e-12
    assert ece(p, y, n_bins=n_bins, binning="mass") == pytest.approx(
        netcal.ECE(bins=n_bins, equal_intervals=False).measure(p, y), abs=1e-12)


def test_classwise_ece_matches_per_class_binary_ece() -> None:
    _, p, y = _random(2000, 4, seed=1)
    tm = np.mean([BinaryCalibrationError(n_bins=15)(torch.tensor(p[:, k]), torch.tensor(y == k).long()).item()
                  for k in range(4)])
    nc = np.mean([netcal.ECE(bins=15).measure(p[:, k], (y == k).astype(int)) for k in range(4)])
    nc_mass = np.mean([netcal.ECE(bins=15, equal_intervals=False).measure(p[:, k], (y == k).astype(int))
                       for k in range(4)])
    assert abs(classwise_ece(p, y) - tm) < 1e-6
    assert abs(classwise_ece(p, y) - nc) < 1e-12
    assert abs(classwise_ece(p, y, binning="mass") - nc_mass) < 1e-12


def test_temperature_recovers_the_temperature_that_made_the_labels() -> None:
    """Labels drawn from softmax(z / 2.5): the fitted T is near 2.5 and the NLL gradient is 0 there."""
    rng = np.random.default_rng(2)
    z = rng.normal(size=(20000, 4)) * 4
    p_true = torch.softmax(torch.tensor(z) / 2.5, 1).numpy()
    y = (p_true.cumsum(1) > rng.random((len(z), 1))).argmax(1)
    fit = fit_temperature(z, y)
    assert fit.temperature == pytest.approx(2.5, rel=0.05) and not fit.at_bound
    assert fit.nll_after < fit.nll_before
    t = torch.tensor(fit.temperature, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.cross_entropy(torch.tensor(z) / t, torch.tensor(y)).backward()
    assert abs(t.grad.item()) < 1e-6  # type: ignore[union-attr]
    # scaling never changes the top-1 class and lowers the ECE of an over-confident model
    scaled = scaled_probs(z, fit.temperature)
    assert torch.equal(scaled.argmax(1), torch.tensor(z).argmax(1))
    assert ece(scaled, y) < ece(torch.softmax(torch.tensor(z), 1), y) / 2


def test_separable_data_stop_at_the_bound_and_say_so() -> None:
    z = np.array([[5.0, -5.0], [-5.0, 5.0]])
    fit = fit_temperature(z, [0, 1], bounds=(0.1, 10.0))
    assert fit.at_bound and fit.temperature == pytest.approx(0.1, rel=1e-5)


def test_one_temperature_per_group() -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(size=(8000, 3)) * 3
    groups = np.where(np.arange(8000) % 2 == 0, "light", "dark")
    temps = np.where(groups == "light", 1.0, 3.0)
    p_true = torch.softmax(torch.tensor(z / temps[:, None]), 1).numpy()
    y = (p_true.cumsum(1) > rng.random((len(z), 1))).argmax(1)
    scaling = fit_temperature_scaling(z, y, groups)
    assert scaling.by_group["light"].temperature == pytest.approx(1.0, rel=0.1)
    assert scaling.by_group["dark"].temperature == pytest.approx(3.0, rel=0.1)
    assert scaling.by_group["dark"].n == 4000
    per_row = scaling.probs(z[:2], groups[:2])
    assert torch.allclose(per_row[1], scaled_probs(z[1:2], scaling.by_group["dark"].temperature)[0])
    assert torch.allclose(scaling.probs(z[:2]), scaled_probs(z[:2], scaling.overall.temperature))
    with pytest.raises(ValueError, match=r"no temperature fitted for group\(s\) \['medium'\]"):
        scaling.probs(z[:1], ["medium"])


def test_calibration_report_per_group_with_patient_intervals() -> None:
    _, p, y = _random(400, 3, seed=4)
    groups = np.array(["a", "b"] * 200)
    patients = np.arange(400) // 2  # two images per patient, one of each group
    report = calibration_report(p, y, groups, clusters=patients, n_boot=200)
    assert set(report) == {"all", "a", "b"}
    for name, rows in (("all", slice(None)), ("a", slice(0, None, 2))):
        r = report[name]
        assert r["ece"].estimate == pytest.approx(ece(p[rows], y[rows]))
        assert r["ece_mass"].estimate == pytest.approx(ece(p[rows], y[rows], binning="mass"))
        assert r["classwise_ece"].estimate == pytest.approx(classwise_ece(p[rows], y[rows]))
        assert r["brier"].estimate == pytest.approx(brier(p[rows], y[rows]))
        assert r["nll"].estimate == pytest.approx(nll(p[rows], y[rows]))
        for interval in r.values():
            assert interval.low < interval.high and interval.unit == "patient"
        for mean in ("brier", "nll"):  # means of per-image values; the ECEs are biased, their interval need not
            assert r[mean].low <= r[mean].estimate <= r[mean].high
    assert report["a"]["ece"].n == 200


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="rows of probs must sum to 1"):
        ece([[0.5, 0.6]], [0])
    with pytest.raises(ValueError, match=r"probs must lie in \[0, 1\]"):
        ece([[2.0, -1.0]], [0])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        nll(PROBS, [0, 1, 2, 0])
    with pytest.raises(ValueError, match="labels has shape"):
        brier(PROBS, [0, 1])
    with pytest.raises(ValueError, match="binning must be"):
        ece(PROBS, LABELS, binning="quantile")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="groups has 1 missing value"):
        calibration_report(PROBS, LABELS, ["a", None, "b", "b"])


def test_the_vectorised_ece_bootstrap_gives_the_per_resample_recomputation() -> None:
    """calibration_report's ECE intervals (equal-width, equal-mass, class-wise) come from row weights, all
    resamples at once; they equal recomputing each ECE on every resample's repeated rows, also when
    confidences tie (rounded to 2 decimals: equal-mass edges land on tied values)."""

    from dermx.trust.calibration import calibration_report, classwise_ece, ece
    from dermx.trust.uncertainty import statistic_interval

    def mass(p: torch.Tensor, y: torch.Tensor) -> float:
        return ece(p, y, binning="mass")

    rng = np.random.default_rng(5)
    p = torch.softmax(torch.from_numpy(rng.normal(0, 2, (150, 4))), dim=1)
    y = torch.from_numpy(rng.integers(0, 4, 150))
    patients = [str(i // 3) for i in range(150)]
    for probs in (p, torch.round(p, decimals=2).clamp(min=0.01)):
        probs = probs / probs.sum(dim=1, keepdim=True)
        fast = calibration_report(probs, y, clusters=patients, n_boot=200, seed=2)["all"]
        for key, statistic in (("ece", ece), ("ece_mass", mass), ("classwise_ece", classwise_ece)):
            slow = statistic_interval(lambda drawn, f=statistic, p=probs: f(p[drawn], y[drawn]), 150, clusters=patients,
                                      n_boot=200, seed=2)
            assert (fast[key].estimate, fast[key].low, fast[key].high) == pytest.approx(
                (slow.estimate, slow.low, slow.high), abs=1e-12), key

