"""Faithfulness, sanity and robustness metrics on hand-computed cases (no oracle library needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import rankdata, spearmanr
from skimage.metrics import structural_similarity
from torch import nn

from dermx.evaluate.leaderboard.faithfulness import (
    _neighbour_sum,
    curve_auc,
    deletion_curves,
    faithfulness_correlation,
    noisy_linear_imputation,
    pixel_ranks,
    road_curves,
)
from dermx.evaluate.leaderboard.robustness import map_sensitivity
from dermx.evaluate.leaderboard.sanity import (
    average_ranks,
    cascading_randomisation,
    randomisation_layers,
    spearman,
    ssim,
)


def pixel_sum(images: torch.Tensor) -> torch.Tensor:
    """A 'model' whose two outputs are the sum of channel 0 and the sum of channel 1."""
    return images[:, :2].sum(dim=(-2, -1))


def test_pixel_ranks_break_ties_by_index() -> None:
    maps = torch.tensor([[[0.5, 1.0], [0.5, 0.0]]])
    assert pixel_ranks(maps).tolist() == [[1, 0, 2, 3]]


def test_deletion_curve_by_hand() -> None:
    image = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0], [30.0, 40.0]]])[None]
    maps = torch.stack([torch.tensor([[0.9, 0.1], [0.5, 0.7]]), torch.tensor([[0.0, 0.3], [0.2, 0.1]])])[None]
    curves = deletion_curves(pixel_sum, image, maps, [0, 1], steps=4, baseline=torch.zeros(1), batch_size=3)
    # target 0 (channel 0), order: pixel 0 (1), pixel 3 (4), pixel 2 (3), pixel 1 (2)
    assert curves.values[0, 0].tolist() == [10, 9, 5, 2, 0]
    # target 1 (channel 1), order: pixel 1 (20), pixel 2 (30), pixel 3 (40), pixel 0 (10)
    assert curves.values[0, 1].tolist() == [100, 80, 50, 10, 0]
    assert curves.auc()[0].tolist() == pytest.approx([(10 + 2 * (9 + 5 + 2) + 0) / 8, (100 + 2 * 140) / 8])
    insertion = deletion_curves(pixel_sum, image, maps, [0, 1], steps=4, mode="insertion", baseline=torch.zeros(1))
    assert insertion.values[0, 0].tolist() == [0, 1, 5, 8, 10]


def test_identical_maps_share_forwards_and_give_the_same_curves() -> None:
    calls = []

    def counting(images: torch.Tensor) -> torch.Tensor:
        calls.append(len(images))
        return pixel_sum(images)

    torch.manual_seed(0)
    images = torch.rand(2, 2, 4, 4)
    one = torch.rand(2, 1, 4, 4)
    maps = one.expand(-1, 3, -1, -1)
    curves = deletion_curves(counting, images, maps, [0, 1, 0], steps=4, baseline="mean")
    # per image: 2 map-independent steps + 3 steps of the one distinct map
    assert sum(calls) == 2 * (2 + 3)
    assert torch.equal(curves.values[:, 0], curves.values[:, 2])


def test_baselines() -> None:
    torch.manual_seed(0)
    images = torch.rand(2, 3, 8, 8)
    maps = torch.rand(2, 1, 8, 8)
    mean = deletion_curves(pixel_sum, images, maps, [0], steps=2, baseline="mean").values
    assert mean[:, 0, -1].tolist() == pytest.approx(mean[:, 0, 0].tolist(), rel=1e-5)  # sum kept by mean fill
    blur = deletion_curves(pixel_sum, images, maps, [0], steps=2, baseline="blur", blur_sigma=1.0).values
    assert blur[:, 0, -1].tolist() == pytest.approx(images[:, 0].sum(dim=(-2, -1)).tolist(), rel=0.05)
    with pytest.raises(ValueError, match="baseline"):
        deletion_curves(pixel_sum, images, maps, [0], baseline="grey")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="do not match"):
        deletion_curves(pixel_sum, images, maps[..., :4], [0])


def test_curve_auc_uneven_positions() -> None:
    assert float(curve_auc(torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.25, 1.0]))) == pytest.approx(0.125)


def test_imputation_reproduces_a_linear_ramp_inside_and_constants() -> None:
    ramp = (torch.arange(12.0)[None, :] * 0.5 + torch.arange(10.0)[:, None] * 2.0)[None, None]
    removed = torch.zeros(1, 10, 12, dtype=torch.bool)
    removed[0, 3:7, 4:9] = True
    out = noisy_linear_imputation(ramp, removed, noise=0.0, tol=1e-7)
    assert torch.allclose(out, ramp, atol=1e-5)
    constant = torch.full((1, 3, 6, 6), 0.3)
    everything_but_one = torch.ones(1, 6, 6, dtype=torch.bool)
    everything_but_one[0, 0, 0] = False
    assert torch.allclose(noisy_linear_imputation(constant, everything_but_one, noise=0.0), constant, atol=1e-6)
    with pytest.raises(ValueError, match="every pixel"):
        noisy_linear_imputation(constant, torch.ones(1, 6, 6, dtype=torch.bool))


def test_neighbour_sum_is_the_imputation_kernel_with_zero_padding() -> None:
    kernel = torch.tensor([[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]], dtype=torch.float64)
    v = torch.randn(5, 1, 7, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = torch.nn.functional.conv2d(v, kernel[None, None], padding=1)
    assert torch.allclose(_neighbour_sum(v), expected, atol=1e-12)


def _imputation_matrix(removed: torch.Tensor) -> torch.Tensor:
    """The dense matrix of the imputation system over all pixels (identity rows on kept pixels), by hand."""
    h, w = removed.shape
    a = torch.eye(h * w, dtype=torch.float64)
    for y in range(h):
        for x in range(w):
            if not removed[y, x]:
                continue
            i = y * w + x
            a[i, i] = 0.0
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    if (dy, dx) != (0, 0) and 0 <= y + dy < h and 0 <= x + dx < w:
                        weight = 1 / 6 if dy == 0 or dx == 0 else 1 / 12
                        a[i, i] += weight
                        a[i, (y + dy) * w + x + dx] -= weight
    return a


def _coarse_stencil(coupling: torch.Tensor, diagonal: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(A v)_I = d_I v_I − Σ_K W_{K,I} v_{I+K} (zero outside) for a coarse level of ``_coarse_levels``,
    ``v (h, w, n, C)``."""
    from dermx.evaluate.leaderboard.faithfulness import _OFFSETS

    h, w = v.shape[:2]
    padded = torch.nn.functional.pad(v, (0, 0, 0, 0, 1, 1, 1, 1))
    out = diagonal * v
    for k, dy, dx in _OFFSETS:
        out -= coupling[k] * padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
    return out


def test_imputation_equals_the_direct_solve() -> None:
    generator = torch.Generator().manual_seed(1)
    image = torch.rand(1, 2, 9, 11, generator=generator, dtype=torch.float64)
    removed = torch.rand(9, 11, generator=generator) < 0.7
    a = _imputation_matrix(removed)
    kept = torch.where(removed.flatten()[:, None], 0.0, image[0].flatten(1).T)  # right-hand side per channel
    exact = torch.linalg.solve(a, kept).T.reshape(1, 2, 9, 11)
    assert torch.allclose(noisy_linear_imputation(image, removed[None], noise=0.0, tol=1e-12), exact, atol=1e-9)
    default = noisy_linear_imputation(image.float(), removed[None], noise=0.0)
    assert (default.double() - exact).abs().max() < 1e-3  # the documented accuracy at the default tol


def test_imputation_accuracy_at_the_default_tolerance_on_128_px() -> None:
    """The documented accuracy (about 5e-4, a twentieth of ROAD's noise) on ROAD-like systems: the top
    20 % and 80 % of a smooth map removed from a noise image, against SciPy's sparse direct solve."""
    import scipy.sparse
    import scipy.sparse.linalg

    generator = torch.Generator().manual_seed(6)
    size = 128
    images = torch.rand(4, 1, size, size, generator=generator)
    smooth = torch.nn.functional.interpolate(torch.rand(2, 1, 4, 4, generator=generator), size=(size, size),
                                             mode="bilinear", align_corners=False)[:, 0]
    removed = torch.stack([m > m.flatten().quantile(q) for m in smooth for q in (0.8, 0.2)])
    ours = noisy_linear_imputation(images, removed, noise=0.0)
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    for image, unknown, out in zip(images[:, 0].double(), removed, ours[:, 0], strict=True):
        index = torch.full((size, size), -1, dtype=torch.long)
        index[unknown] = torch.arange(int(unknown.sum()))
        rows, columns, values = [], [], []
        rhs = torch.zeros(int(unknown.sum()), dtype=torch.float64)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if (dy, dx) == (0, 0):
                    continue
                weight = 1 / 6 if dy == 0 or dx == 0 else 1 / 12
                y, x = ys[unknown] + dy, xs[unknown] + dx
                inside = (y >= 0) & (y < size) & (x >= 0) & (x < size)
                i, y, x = index[unknown][inside], y[inside], x[inside]
                rows += [i, i]
                columns += [i, torch.where(unknown[y, x], index[y, x], -1)]
                values += [torch.full(i.shape, sign * weight, dtype=torch.float64) for sign in (1, -1)]
                rhs.index_add_(0, i, torch.where(unknown[y, x], 0.0, weight * image[y, x]))
        row, column, value = torch.cat(rows), torch.cat(columns), torch.cat(values)
        keep = column >= 0
        a = scipy.sparse.csc_matrix((value[keep].numpy(), (row[keep].numpy(), column[keep].numpy())),
                                    shape=(len(rhs), len(rhs)))
        exact = torch.from_numpy(scipy.sparse.linalg.spsolve(a, rhs.numpy()))
        assert float((out[unknown].double() - exact).abs().max()) < 5e-4
        assert torch.equal(out[~unknown], image[~unknown].float())


def test_coarse_levels_are_galerkin_products() -> None:
    from dermx.evaluate.leaderboard.faithfulness import _coarse_levels

    removed = torch.rand(5, 7, generator=torch.Generator().manual_seed(2)) < 0.6
    mask = removed.double()[None, None]
    degree = _neighbour_sum(torch.ones(1, 1, 5, 7, dtype=torch.float64))
    levels = _coarse_levels(mask, degree, smallest=1)
    assert [tuple(c.shape[1:3]) for c, _ in levels] == [(3, 4), (2, 2), (1, 1)]
    a = _imputation_matrix(removed) * removed.flatten().double()[:, None] * removed.flatten().double()[None]
    fine = (5, 7)
    for coupling, diagonal in levels:
        coarse = tuple(coupling.shape[1:3])
        # piecewise-constant prolongation from 2x2 aggregates
        p = torch.zeros(fine[0] * fine[1], coarse[0] * coarse[1], dtype=torch.float64)
        for y in range(fine[0]):
            for x in range(fine[1]):
                p[y * fine[1] + x, (y // 2) * coarse[1] + x // 2] = 1.0
        a = p.T @ a @ p
        basis = torch.eye(coarse[0] * coarse[1], dtype=torch.float64).view(-1, *coarse, 1, 1)
        applied = torch.stack([_coarse_stencil(coupling, diagonal, e).flatten() for e in basis], dim=1)
        assert torch.allclose(applied, a, atol=1e-12)
        fine = coarse


def test_coarsest_level_is_solved_exactly() -> None:
    from dermx.evaluate.leaderboard.faithfulness import _coarse_levels, _DenseLevel

    removed = torch.rand(2, 9, 11, generator=torch.Generator().manual_seed(3)) < 0.6
    degree = _neighbour_sum(torch.ones(1, 1, 9, 11, dtype=torch.float64))
    (coupling, diagonal), = _coarse_levels(removed.double()[:, None], degree)  # 5x6 cells: the first is the last
    level = _DenseLevel(coupling, diagonal, 3)
    r = torch.randn(5, 6, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    r = r * (diagonal > 0)  # no residual on empty cells
    assert torch.allclose(_coarse_stencil(coupling, diagonal, level.solve(r)), r, atol=1e-10)


def test_v_cycle_is_a_symmetric_positive_definite_preconditioner() -> None:
    """CG needs ⟨B r, s⟩ = ⟨r, B s⟩ and ⟨B r, r⟩ > 0 for the V-cycle B (two coarse levels and the dense
    one at 40 px; an odd, non-square grid padded to even sizes)."""
    from dermx.evaluate.leaderboard.faithfulness import _Multigrid

    generator = torch.Generator().manual_seed(5)
    removed = torch.rand(3, 37, 41, generator=generator) < 0.5
    mask = removed.double()[:, None]
    grid = _Multigrid(mask, _neighbour_sum(torch.ones(1, 1, 37, 41, dtype=torch.float64)), 2)
    assert len(grid.levels) == 3
    r, s = (torch.nn.functional.pad(torch.randn(3, 2, 37, 41, dtype=torch.float64, generator=generator) * mask,
                                    (0, 1, 0, 1)) for _ in range(2))
    br = grid.v_cycle(r).clone()
    bs = grid.v_cycle(s).clone()
    assert torch.allclose((br * s).sum(dim=(2, 3)), (r * bs).sum(dim=(2, 3)), rtol=1e-10)
    assert bool(((br * r).sum(dim=(2, 3)) > 0).all())
    assert float(br[:, :, 37:].abs().sum() + br[..., 41:].abs().sum()) == 0  # the padding and kept pixels stay 0
    assert bool((br[..., :37, :41][~removed[:, None].expand(-1, 2, -1, -1)] == 0).all())


def test_road_morf_and_lerf_remove_opposite_ends() -> None:
    image = torch.zeros(1, 2, 6, 6)
    image[0, 0, :, :3] = 1.0  # left half bright
    maps = torch.zeros(1, 1, 6, 6)
    maps[0, 0, :, :3] = 1.0
    maps[0, 0] += torch.linspace(0, 0.01, 36).view(6, 6)  # distinct values
    morf = road_curves(pixel_sum, image, maps, [0], percentages=[50], order="morf", noise=0.0).values
    lerf = road_curves(pixel_sum, image, maps, [0], percentages=[50], order="lerf", noise=0.0).values
    assert float(morf) < 1e-4  # the bright half removed and imputed from the dark half
    # the dark half removed: its only known neighbours are bright, so it is imputed bright
    assert float(lerf) == pytest.approx(36.0, abs=1e-4)


def test_faithfulness_correlation_of_a_linear_model_is_one() -> None:
    torch.manual_seed(0)
    images = torch.rand(2, 2, 5, 5)
    # For f = Σ x_0 and baseline 0, f(x) − f(x_r) = Σ_{S_r} x_0: the map s = x_0 correlates perfectly.
    maps = images[:, :1]
    fc = faithfulness_correlation(pixel_sum, images, maps, [0], n_runs=20, subset_size=5, baseline=torch.zeros(1))
    assert fc.flatten().tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    flat = faithfulness_correlation(pixel_sum, images, torch.ones(2, 1, 5, 5), [0], n_runs=5, subset_size=5)
    assert torch.isnan(flat).all()


def test_spearman_with_ties_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, size=(3, 5, 6)).astype(float)
    b = rng.integers(0, 3, size=(3, 5, 6)).astype(float)
    ours = spearman(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    expected = [spearmanr(x.ravel(), y.ravel())[0] for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(ours, expected, atol=1e-12)
    ranks = average_ranks(torch.from_numpy(a))
    np.testing.assert_array_equal(ranks.numpy(), [rankdata(x.ravel()) for x in a])
    assert torch.equal(spearman(torch.from_numpy(a), torch.from_numpy(b), a_ranks=ranks), torch.from_numpy(ours))
    assert math.isnan(float(spearman(torch.ones(4, 4), torch.rand(4, 4))))


def test_ssim_matches_scikit_image() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.random((4, 12, 10)), rng.random((4, 12, 10))
    b[1] = a[1]
    ours = ssim(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    expected = [structural_similarity(x, y, data_range=max(x.max(), y.max()) - min(x.min(), y.min()))
                for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(ours, expected, atol=1e-10)
    assert ours[1] == pytest.approx(1.0)


def tiny_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()


def test_cascading_randomisation_goes_from_the_head_down_and_leaves_the_model() -> None:
    model = tiny_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert randomisation_layers(model) == ["6", "2", "0"]
    changed = []
    for name, randomised in cascading_randomisation(model):
        state = randomised.state_dict()
        changed.append([k for k in before if not torch.equal(before[k], state[k])])
        assert any(k.startswith(f"{name}.") for k in changed[-1])
    assert changed[0] == ["6.weight", "6.bias"] and len(changed[-1]) == 6
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_sensitivity_by_hand() -> None:
    # Φ(x) = x (one target): ‖δ‖ / ‖x‖ for each draw.
    images = torch.ones(1, 1, 2, 2)
    noise = torch.stack([torch.full((1, 1, 2, 2), 0.1), torch.full((1, 1, 2, 2), -0.3)])
    result = map_sensitivity(lambda x: x, images, noise=noise)
    assert float(result.max) == pytest.approx(0.3)
    assert float(result.avg) == pytest.approx(0.2)
    zero = map_sensitivity(lambda x: x * 0, images, n_samples=2)
    assert torch.isnan(zero.max).all()


def test_random_logit_picks_another_class_of_the_head() -> None:
    from dermx.evaluate.leaderboard.sanity import random_logit

    torch.manual_seed(0)
    maps = torch.rand(3, 5, 9, 9)
    maps[:, 3:] = maps[:, 2:3]  # columns 2, 3, 4: one head whose classes share a map
    same = random_logit(maps, torch.tensor([2, 3, 4]), torch.tensor([2, 3, 4]))
    assert same.tolist() == pytest.approx([1.0, 1.0, 1.0])
    other = random_logit(maps, torch.tensor([0, 0, 0]), torch.tensor([0, 1]))
    expected = ssim(maps[:, 0], maps[:, 1])
    assert torch.allclose(other, expected)
