"""Parity with Quantus (a test oracle only) on a small CNN and binary masks, for every metric both have.

Definitional differences, each handled in the test rather than hidden by a tolerance:

- PixelFlipping: Quantus' curve omits the unperturbed score c_0 and its AUC is ``trapz(c_1..c_S, dx=1)``;
  ours is c_0..c_S on [0, 1], so ``S · AUC_ours = AUC_quantus + (c_0 + c_1)/2``. Quantus' ``"black"``
  baseline is the image minimum (``baseline="min"`` here). Quantus counts ``features_in_step`` over
  the map's own shape but removes them from the map broadcast to (C, H, W), so a one-channel map
  would remove a third of a pixel's channels per feature; the oracle gets the map repeated per channel.
- ROAD: Quantus scores accuracy [argmax f(x_p) = y] and only MoRF; we score the target probability, so
  accuracy is recomputed from our imputed images. Its noise is NumPy's: compared at noise 0. Quantus
  indexes the pixels of a broadcast (C, H, W) map as if it were (H, W), so the metric is compared on
  one-channel images; the imputation itself on three channels.
- FaithfulnessCorrelation, Max/AvgSensitivity: random draws; we are given Quantus' draws (same seed).
- MPRT: the same layer order and seeding; Quantus explains the randomised model through our engine.
- RandomLogit: Quantus (0.6) flattens both maps before its SSIM, so its 7-wide window slides along the
  row-major pixel sequence; ours slides a 7×7 window over the map, as for MPRT's SSIM. The oracle is
  given Quantus' own ``ssim`` on the maps reshaped back to (H, W); we are given its off-class draws.
- Pointing game, relevance mass accuracy, AUC: dermx.metrics' fuzzy scores on binary masks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dermx.evaluate.leaderboard.faithfulness import (
    deletion_curves,
    faithfulness_correlation,
    noisy_linear_imputation,
    pixel_ranks,
    road_curves,
)
from dermx.evaluate.leaderboard.robustness import map_sensitivity
from dermx.evaluate.leaderboard.sanity import cascading_randomisation, random_logit, spearman
from dermx.explain import explain

quantus = pytest.importorskip("quantus")

H = W = 16


def small_cnn(channels: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(channels, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    ).eval()


def inputs(channels: int = 3, n: int = 4, seed: int = 0, size: int = H) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n, channels, size, size, generator=generator)
    maps = torch.rand(n, 1, size, size, generator=generator)  # distinct values: no ties in the orderings
    return images, maps


def softmax_of(model: nn.Module):
    return lambda x: model(x).softmax(dim=-1)


def test_pixel_flipping() -> None:
    model = small_cnn()
    # Quantus wants features_in_step to divide H·W and takes it from the (C, H, W) map: 12×12 images,
    # 48 features = 16 whole pixels per step, 9 steps.
    images, maps = inputs(size=12)
    labels = np.array([0, 1, 2, 3])
    steps = 9
    metric = quantus.PixelFlipping(features_in_step=48, perturb_baseline="black",
                                   normalise=False, disable_warnings=True)
    full = maps.expand(-1, 3, -1, -1).numpy()  # one map per channel: a step removes whole pixels
    theirs = np.asarray(metric(model=model, x_batch=images.numpy(), y_batch=labels, a_batch=full,
                               device="cpu", softmax=True))
    ours = deletion_curves(softmax_of(model), images, maps, torch.from_numpy(labels)[:, None], steps=steps,
                           baseline="min")
    np.testing.assert_allclose(ours.values[:, 0, 1:].numpy(), theirs, atol=1e-5)
    # return_auc_per_sample=True computes np.trapz(curve, dx=1), which NumPy >= 2.4 no longer has: the
    # same trapezoid on Quantus' curve.
    their_auc = np.trapezoid(theirs, dx=1, axis=1)
    c = ours.values[:, 0].numpy()
    np.testing.assert_allclose(steps * ours.auc()[:, 0].numpy(), their_auc + (c[:, 0] + c[:, 1]) / 2, atol=1e-4)


def test_noisy_linear_imputation() -> None:
    from quantus.functions.perturb_func import noisy_linear_imputation as theirs

    images, maps = inputs()
    for i, p in enumerate((5, 30, 60, 95)):
        top = pixel_ranks(maps[i, 0]) < int(H * W * p / 100)
        indices = np.flatnonzero(top.numpy())
        expected = theirs(arr=images[i].numpy().astype(np.float64), indices=indices, noise=0.0)
        ours = noisy_linear_imputation(images[i:i + 1], top.view(1, H, W), noise=0.0, tol=1e-7)[0]
        np.testing.assert_allclose(ours.numpy(), expected, atol=1e-4)


def test_road_morf_accuracy() -> None:
    model = small_cnn(channels=1)
    images, maps = inputs(channels=1, n=6)
    labels = model(images).argmax(dim=1).numpy()
    percentages = [10, 40, 70, 90]
    metric = quantus.ROAD(percentages=percentages, noise=0.0, normalise=False, disable_warnings=True)
    metric(model=model, x_batch=images.numpy(), y_batch=labels, a_batch=maps.numpy(), device="cpu")
    theirs = np.array([metric.evaluation_scores[p] for p in percentages])
    # accuracy from our imputed images: the "score" returns one-hot argmax predictions
    def one_hot(x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(model(x).argmax(dim=1), 4).float()

    ours = road_curves(one_hot, images, maps, torch.from_numpy(labels)[:, None], percentages=percentages,
                       noise=0.0, tol=1e-7).values
    np.testing.assert_allclose(ours[:, 0].mean(dim=0).numpy(), theirs, atol=1e-6)


def _record(monkeypatch: pytest.MonkeyPatch, name: str) -> list[np.ndarray]:
    """The draws made through ``np.random.<name>`` from now on (Quantus' random draws, replayed in ours)."""
    drawn: list[np.ndarray] = []
    original = getattr(np.random, name)

    def recording(*args: object, **kwargs: object) -> np.ndarray:
        drawn.append(original(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(np.random, name, recording)
    return drawn


def test_faithfulness_correlation(monkeypatch: pytest.MonkeyPatch) -> None:
    model = small_cnn(channels=1)
    images, maps = inputs(channels=1, n=3)
    runs, size = 12, 40
    drawn = _record(monkeypatch, "choice")  # Quantus' subsets, given to ours
    for i in range(3):
        drawn.clear()
        metric = quantus.FaithfulnessCorrelation(nr_runs=runs, subset_size=size, normalise=False,
                                                 disable_warnings=True)
        theirs = metric(model=model, x_batch=images[i:i + 1].numpy(), y_batch=np.array([i]),
                        a_batch=maps[i:i + 1].numpy(), device="cpu")
        subsets = torch.from_numpy(np.stack(drawn))
        assert subsets.shape == (runs, size)
        ours = faithfulness_correlation(lambda x: model(x), images[i:i + 1], maps[i:i + 1], [i], subsets=subsets,
                                        baseline="min")
        assert float(ours[0, 0]) == pytest.approx(theirs[0], abs=1e-4)


def cam_maps(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Grad-CAM of every target at the second convolution, without the ReLU (no constant maps)."""
    return explain(model, images, method="gradcam", layer="2", relu=False).maps


def gradcam_numpy(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **_: object) -> np.ndarray:
    """Quantus' ``explain_func``: our engine's Grad-CAM of the given targets, one channel."""
    x = torch.as_tensor(inputs)
    maps = cam_maps(model, x)
    picked = maps[torch.arange(len(x)), torch.as_tensor(targets)]
    return picked[:, None].detach().numpy()


def test_mprt_spearman_per_layer() -> None:
    model = small_cnn()
    images, _ = inputs()
    labels = np.array([0, 1, 2, 3])
    a = gradcam_numpy(model, images.numpy(), labels)
    metric = quantus.MPRT(normalise=False, abs=False, seed=42, disable_warnings=True)
    theirs = metric(model=model, x_batch=images.numpy(), y_batch=labels, a_batch=a, device="cpu",
                    explain_func=gradcam_numpy)
    reference = cam_maps(model, images)
    for name, randomised in cascading_randomisation(model, seed=42):
        maps = cam_maps(randomised, images)
        ours = spearman(reference, maps)[torch.arange(4), torch.from_numpy(labels)].numpy()
        np.testing.assert_allclose(ours, np.asarray(theirs[name], dtype=float), atol=1e-4)


def test_random_logit() -> None:
    model = small_cnn()
    images, _ = inputs()
    labels = np.array([0, 1, 2, 3])
    asked: list[np.ndarray] = []

    def explain_func(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **kw: object) -> np.ndarray:
        asked.append(np.asarray(targets).copy())
        return gradcam_numpy(model, inputs, targets, **kw)

    def ssim_2d(a: np.ndarray, b: np.ndarray, batched: bool = False, **kw: object) -> list[float]:
        return quantus.similarity_func.ssim(a.reshape(-1, H, W), b.reshape(-1, H, W), batched=True)

    a = gradcam_numpy(model, images.numpy(), labels)
    metric = quantus.RandomLogit(num_classes=4, seed=42, similarity_func=ssim_2d, normalise=False, abs=False,
                                 disable_warnings=True)
    theirs = metric(model=model, x_batch=images.numpy(), y_batch=labels, a_batch=a, device="cpu",
                    explain_func=explain_func)
    off = torch.from_numpy(asked[-1]).long()
    assert (off != torch.from_numpy(labels)).all()
    maps, columns = cam_maps(model, images), torch.from_numpy(labels)
    ours = random_logit(maps, columns, torch.arange(4), others=off)
    assert np.isfinite(theirs).all()
    np.testing.assert_allclose(ours.numpy(), np.asarray(theirs, dtype=float), atol=1e-4)
    with pytest.raises(ValueError, match="must differ"):
        random_logit(maps, columns, torch.arange(4), others=columns)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_sensitivity(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = small_cnn()
    images, _ = inputs()
    labels = np.array([0, 1, 2, 3])
    radius, samples = 0.05, 3
    a = gradcam_numpy(model, images.numpy(), labels)
    drawn = _record(monkeypatch, "uniform")  # Quantus' noise, given to ours
    cls = quantus.MaxSensitivity if kind == "max" else quantus.AvgSensitivity
    metric = cls(nr_samples=samples, lower_bound=radius, normalise=False, disable_warnings=True)
    theirs = metric(model=model, x_batch=images.numpy(), y_batch=labels, a_batch=a, device="cpu",
                    explain_func=gradcam_numpy)
    noise = torch.from_numpy(np.stack(drawn)).float().view(samples, 4, 3, H, W)
    result = map_sensitivity(lambda x: cam_maps(model, x), images, noise=noise)
    ours = getattr(result, kind)[torch.arange(4), torch.from_numpy(labels)].numpy()
    assert np.isfinite(theirs).all()
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_localisation_scores_on_binary_masks() -> None:
    from dermx.metrics import compute_metrics

    generator = torch.Generator().manual_seed(5)
    saliency = torch.rand(6, 1, H, W, generator=generator)
    masks = torch.zeros(6, 1, H, W)
    for i in range(6):
        masks[i, 0, i: i + 6, 2 + i: 9 + i] = 1
    x = torch.rand(6, 1, H, W, generator=generator).numpy()
    y = np.zeros(6, dtype=int)
    ours = compute_metrics(["pointing", "energy", "roc_auc"], saliency, masks)
    kwargs = {"model": None, "x_batch": x, "y_batch": y, "a_batch": saliency.numpy(), "s_batch": masks.numpy()}
    pointing = quantus.PointingGame(disable_warnings=True)(**kwargs)
    mass = quantus.RelevanceMassAccuracy(disable_warnings=True)(**kwargs)
    auc = quantus.AUC(disable_warnings=True)(**kwargs)
    np.testing.assert_allclose(ours["pointing"].values.flatten().numpy(), np.asarray(pointing, dtype=float))
    np.testing.assert_allclose(ours["energy"].values.flatten().numpy(), mass, atol=1e-5)
    np.testing.assert_allclose(ours["roc_auc"].values.flatten().numpy(), auc, atol=1e-6)
