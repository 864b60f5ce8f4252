"""Checks every map metric of the registry must pass (scikit-learn's common-test style).

For each metric of :data:`dermx.metrics.METRICS`: values lie in its declared range and NaN exactly
where flagged undefined (bounds); a binary map scores its best value against itself (identity); on
binary maps it equals a scikit-learn or hand computation on the flattened pixels (crisp equality);
a map on the lesion scores better than one beside it (direction). A metric added to the registry
needs an entry in :data:`CRISP` before these tests pass.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, jaccard_score, precision_score, recall_score, roc_auc_score

from dermx.metrics import METRICS, MetricInfo, compute_metrics


def _pointing(y: np.ndarray, s: np.ndarray) -> float:
    """The mean reference value over the pixels where the map is maximal."""
    return float(y[s == s.max()].mean())


def _energy(y: np.ndarray, s: np.ndarray) -> float:
    return float((s * y).sum() / s.sum())


#: Each metric on flattened binary reference ``y`` and prediction or saliency ``s``.
CRISP: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "sensitivity": lambda y, s: recall_score(y, s),
    "specificity": lambda y, s: recall_score(y, s, pos_label=0),
    "precision": lambda y, s: precision_score(y, s),
    "npv": lambda y, s: precision_score(y, s, pos_label=0),
    "iou": lambda y, s: jaccard_score(y, s),
    "dice": lambda y, s: f1_score(y, s),
    "pointing": _pointing,
    "fuzzy_pointing": _pointing,  # on a binary reference the two pointing games agree
    "energy": _energy,
    "roc_auc": lambda y, s: roc_auc_score(y, s),
}

NAMES = sorted(METRICS)


def _best(info: MetricInfo) -> float:
    return info.range[1] if info.higher_is_better else info.range[0]


def _binary(generator: torch.Generator, shape: tuple[int, ...], share: float = 0.4) -> torch.Tensor:
    """Random binary maps, each with at least one 1 and one 0."""
    maps = (torch.rand(shape, generator=generator) < share).float()
    maps[..., 0, 0], maps[..., -1, -1] = 1.0, 0.0
    return maps


def test_every_metric_has_a_crisp_reference() -> None:
    assert sorted(CRISP) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_bounds(name: str) -> None:
    info = METRICS[name]
    g = torch.Generator().manual_seed(0)
    prediction, reference = torch.rand(4, 3, 9, 7, generator=g), torch.rand(4, 3, 9, 7, generator=g)
    reference[0, 0] = 0.0  # an empty reference: undefined for some metrics
    prediction[1, 0] = 0.0  # an empty map
    reference[2, 0] = 1.0  # a full reference
    scores = info.fn(prediction, reference)
    assert scores.values.shape == (4, 3) and torch.equal(scores.undefined, scores.values.isnan())
    defined = scores.values[~scores.undefined]
    low, high = info.range
    assert defined.numel() > 0 and ((defined >= low) & (defined <= high)).all()


@pytest.mark.parametrize("name", NAMES)
def test_identity(name: str) -> None:
    info = METRICS[name]
    maps = _binary(torch.Generator().manual_seed(1), (5, 12, 10))
    torch.testing.assert_close(info.fn(maps, maps).values, torch.full((5,), _best(info)))


#: Every metric on a binary prediction; the saliency scores also on a continuous map (a fuzzy confusion
#: score compares membership maps: crisp means both binary).
CRISP_CASES = [(name, False) for name in NAMES] + [(n, True) for n in NAMES if METRICS[n].of_confusion is None]


@pytest.mark.parametrize(("name", "saliency"), CRISP_CASES)
def test_crisp_equality(name: str, saliency: bool) -> None:
    info = METRICS[name]
    g = torch.Generator().manual_seed(2)
    reference = _binary(g, (6, 11, 13))
    prediction = torch.rand(6, 11, 13, generator=g) if saliency else _binary(g, (6, 11, 13), share=0.5)
    values = info.fn(prediction, reference).values
    expected = [CRISP[name](y.flatten().numpy().astype(int), s.flatten().numpy())
                for y, s in zip(reference, prediction, strict=True)]
    np.testing.assert_allclose(values.double().numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_direction(name: str) -> None:
    """A map high on the lesion and low elsewhere scores better than the same map beside the lesion."""
    info = METRICS[name]
    reference = torch.zeros(1, 16, 16)
    reference[0, 2:8, 3:9] = 1.0
    beside = torch.zeros_like(reference)
    beside[0, 9:15, 8:14] = 1.0
    good, bad = 0.1 + 0.8 * reference, 0.1 + 0.8 * beside
    better, worse = info.fn(good, reference).values.item(), info.fn(bad, reference).values.item()
    assert (better > worse) if info.higher_is_better else (better < worse)


def test_compute_metrics_matches_each_metric_and_routes_options() -> None:
    g = torch.Generator().manual_seed(3)
    maps, reference = torch.rand(3, 2, 8, 8, generator=g), _binary(g, (3, 2, 8, 8))
    together = compute_metrics(NAMES, maps, reference, tolerance=2.0)
    assert list(together) == NAMES
    for name in NAMES:
        info = METRICS[name]
        alone = info.fn(maps, reference, **({"tolerance": 2.0} if "tolerance" in info.options else {}))
        torch.testing.assert_close(together[name].values, alone.values, equal_nan=True)
    with pytest.raises(ValueError, match="tolerance"):
        compute_metrics(["dice"], maps, reference, tolerance=1.0)
    with pytest.raises(ValueError, match="unknown metric"):
        compute_metrics(["pointing_game"], maps, reference)
