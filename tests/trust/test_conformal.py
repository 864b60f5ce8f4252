"""dermx.trust.conformal: hand-computed scores and quantiles, parity with MAPIE's sets on the same
probabilities, and Mondrian sets restoring coverage in a harder group."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from mapie.classification import SplitConformalClassifier
from sklearn.base import BaseEstimator, ClassifierMixin

from dermx.trust.conformal import (
    calibrate_sets,
    conformal_quantile,
    conformity_scores,
    coverage_report,
    label_scores,
    prediction_sets,
    random_uniforms,
)

P = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])


def test_scores_by_hand() -> None:
    assert torch.allclose(label_scores(P, "lac"), torch.tensor([[0.5, 0.7, 0.8], [0.9, 0.4, 0.7]], dtype=torch.float64))
    # APS: mass down to and including each class, classes by decreasing probability
    assert torch.allclose(label_scores(P, "aps"), torch.tensor([[0.5, 0.8, 1.0], [1.0, 0.6, 0.9]], dtype=torch.float64))
    u = [0.5, 0.0]
    assert torch.allclose(label_scores(P, "aps", uniforms=u),
                          torch.tensor([[0.25, 0.65, 0.9], [1.0, 0.6, 0.9]], dtype=torch.float64))
    assert conformity_scores(P, [1, 2], "aps").tolist() == pytest.approx([0.8, 0.9])
    # ties go to the lower class index first
    assert label_scores([[0.4, 0.4, 0.2]], "aps")[0].tolist() == pytest.approx([0.4, 0.8, 1.0])


def test_the_finite_sample_quantile() -> None:
    scores = [0.1 * i for i in range(1, 11)]  # n = 10
    assert conformal_quantile(scores, 0.2) == pytest.approx(0.9)  # ⌈11 · 0.8⌉ = 9th smallest
    assert conformal_quantile(scores, 0.5) == pytest.approx(0.6)  # ⌈5.5⌉ = 6th
    assert conformal_quantile(scores, 0.05) == math.inf  # ⌈10.45⌉ = 11 > n: every class
    assert prediction_sets(P, math.inf).all()


def test_sets_by_hand() -> None:
    assert prediction_sets(P, 0.7, "lac").tolist() == [[True, True, False], [False, True, True]]
    assert prediction_sets(P, 0.55, "aps").tolist() == [[True, False, False], [False, False, False]]
    # one threshold per row
    assert prediction_sets(P, torch.tensor([0.5, 0.95]), "aps").tolist() == [[True, False, False],
                                                                              [False, True, True]]


class _Probabilities(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A prefit 'model' whose inputs are its probabilities, so MAPIE scores exactly the given rows."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Probabilities:
        self.classes_ = np.arange(x.shape[1])
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x).argmax(1)


def _data(n: int, k: int, rng: np.random.Generator, spread: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and classes drawn from them (a calibrated model)."""
    p = torch.softmax(torch.tensor(rng.normal(size=(n, k)) * spread), 1).numpy()
    y = (p.cumsum(1) > rng.random((n, 1))).argmax(1)
    return p, y


def _mapie(score: str, p_cal: np.ndarray, y_cal: np.ndarray, p_test: np.ndarray, seed: int,
           include_last_label: bool | str = True) -> tuple[np.ndarray, float]:
    model = SplitConformalClassifier(_Probabilities().fit(p_cal, y_cal), confidence_level=0.9,
                                     conformity_score=score, prefit=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.conformalize(p_cal, y_cal)
        params = {"include_last_label": include_last_label} if score == "aps" else None
        _, sets = model.predict_set(p_test, conformity_score_params=params)
    return sets[:, :, 0], float(model._mapie_classifier.conformity_score_function_.quantiles_[0])


@pytest.mark.parametrize("seed", [0, 1])
def test_lac_sets_match_mapie(seed: int) -> None:
    rng = np.random.default_rng(seed)
    (p_cal, y_cal), (p_test, _) = _data(500, 6, rng), _data(800, 6, rng)
    theirs, q = _mapie("lac", p_cal, y_cal, p_test, seed)
    ours = calibrate_sets(p_cal, y_cal, 0.1, "lac")
    assert ours.marginal.value == q
    assert np.array_equal(ours.sets(p_test).numpy(), theirs)


@pytest.mark.parametrize("seed", [0, 1])
def test_randomised_aps_sets_match_mapie_given_its_uniforms(seed: int) -> None:
    """MAPIE draws the calibration uniforms, then the test ones, each from a fresh RandomState(seed)."""
    rng = np.random.default_rng(seed)
    (p_cal, y_cal), (p_test, _) = _data(500, 6, rng), _data(800, 6, rng)
    theirs, q = _mapie("aps", p_cal, y_cal, p_test, seed, include_last_label="randomized")
    u_cal = np.random.RandomState(seed).uniform(size=len(p_cal))
    u_test = np.random.RandomState(seed).uniform(size=(len(p_test), 1))[:, 0]
    ours = calibrate_sets(p_cal, y_cal, 0.1, "aps", uniforms=u_cal)
    assert ours.marginal.value == pytest.approx(q, abs=1e-15)
    assert np.array_equal(ours.sets(p_test, uniforms=u_test).numpy(), theirs)
    assert (theirs.sum(1) == 0).any() or (theirs.sum(1) >= 1).all()  # randomised sets may be empty


def test_non_randomised_aps_sets_differ_from_mapie_only_where_it_keeps_the_top_class() -> None:
    """Given MAPIE's threshold, ``{k : s(x, k) ≤ q̂}`` equals MAPIE's ``include_last_label=False`` sets
    except where ours is empty and MAPIE keeps the top class (the documented convention difference)."""
    rng = np.random.default_rng(5)
    (p_cal, y_cal), (p_test, _) = _data(500, 6, rng), _data(800, 6, rng)
    theirs, q = _mapie("aps", p_cal, y_cal, p_test, 0, include_last_label=False)
    ours = prediction_sets(p_test, q, "aps").numpy()
    differ = (ours != theirs).any(1)
    assert differ.any()  # the case occurs in this sample
    assert (ours[differ].sum(1) == 0).all()
    assert (theirs[differ] == (p_test[differ] == p_test[differ].max(1, keepdims=True))).all()


def _two_groups(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A model that is sharp and right on 'light' images and over-confident and often wrong on 'dark' ones:
    dark images' true class is drawn from flatter probabilities than the model reports."""
    k = 5
    groups = np.where(rng.random(n) < 0.5, "light", "dark")
    z = rng.normal(size=(n, k)) * 3
    p = torch.softmax(torch.tensor(z), 1).numpy()
    truth = torch.softmax(torch.tensor(np.where(groups[:, None] == "dark", z / 4, z)), 1).numpy()
    y = (truth.cumsum(1) > rng.random((n, 1))).argmax(1)
    return p, y, groups


@pytest.mark.parametrize("score", ["lac", "aps"])
def test_mondrian_sets_restore_coverage_in_the_harder_group(score: str) -> None:
    rng = np.random.default_rng(11)
    p_cal, y_cal, g_cal = _two_groups(20000, rng)  # about 10 000 per group: the coverage of a draw has SD ≈ 0.003
    p_test, y_test, g_test = _two_groups(20000, rng)
    calibration = calibrate_sets(p_cal, y_cal, 0.1, score, g_cal)
    marginal = coverage_report(calibration.sets(p_test), y_test, g_test, n_boot=100)
    mondrian = coverage_report(calibration.sets(p_test, g_test), y_test, g_test, n_boot=100)
    assert marginal.worst_group == "dark"
    assert marginal.overall.coverage.estimate >= 0.9 - 0.015  # the marginal guarantee holds on average
    assert marginal.by_group["dark"].coverage.high < 0.9  # ... but not for the dark group
    for name in ("light", "dark"):
        assert mondrian.by_group[name].coverage.estimate >= 0.9 - 0.015
    assert mondrian.by_group["dark"].mean_size.estimate > marginal.by_group["dark"].mean_size.estimate
    assert calibration.by_group["dark"].value > calibration.by_group["light"].value


def test_coverage_report_by_hand() -> None:
    sets = torch.tensor([[True, False], [True, True], [False, True], [False, False]])
    report = coverage_report(sets, [0, 1, 0, 1], ["a", "a", "b", "b"], clusters=[1, 1, 2, 3], n_boot=50)
    assert report.overall.coverage.estimate == 0.5 and report.overall.coverage.unit == "image (Wilson)"
    assert report.overall.mean_size.estimate == 1.0 and report.overall.mean_size.unit == "patient"
    assert report.overall.n_empty == 1
    assert report.by_group["a"].coverage.estimate == 1.0 and report.by_group["a"].coverage.low < 1.0
    assert report.by_group["b"].coverage.estimate == 0.0 and report.worst_group == "b"
    assert report.by_group["b"].mean_size.estimate == 0.5


def test_errors_are_named() -> None:
    calibration = calibrate_sets(P, [0, 1], 0.5, "lac", ["a", "b"])
    with pytest.raises(ValueError, match=r"no conformal threshold for group\(s\) \['c'\]"):
        calibration.sets(P, ["a", "c"])
    with pytest.raises(ValueError, match="uniforms randomise the 'aps' score only"):
        label_scores(P, "lac", uniforms=[0.1, 0.2])
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
        calibrate_sets(P, [0, 1], 1.0)
    with pytest.raises(ValueError, match="score must be"):
        label_scores(P, "raps")  # type: ignore[arg-type]
    u = random_uniforms(3, seed=4)
    assert torch.equal(u, random_uniforms(3, seed=4)) and ((u >= 0) & (u < 1)).all()
