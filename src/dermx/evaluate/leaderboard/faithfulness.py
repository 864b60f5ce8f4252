r"""Faithfulness of saliency maps to the model, batched over every (image, target) in torch.

Notation: x ∈ R^{C×H×W} an input, s_t ∈ R^{H×W} the map of target t (at the input size), f_t(x) the
model's score of target t (a probability or a logit: whatever the ``score`` function returns), x̃ a
baseline image, ρ_t(i) the rank of pixel i in s_t sorted by decreasing value (ties broken by pixel
index, the order of a stable sort), N = H·W.

**Deletion and insertion** (Petsiuk et al. 2018, "RISE"). At fractions 0 = q_0 < … < q_S = 1 (S
steps), the top n_k = round(q_k·N) pixels of s_t, M_k(i) = [ρ_t(i) < n_k] (all channels), are

* deleted: x^{del}_k = x ⊙ (1 − M_k) + x̃ ⊙ M_k, starting from x and ending at x̃;
* inserted: x^{ins}_k = x̃ ⊙ (1 − M_k) + x ⊙ M_k, starting from x̃ and ending at x;

and the curve is c_k = f_t(x_k). The area under it is the trapezoid rule on [0, 1],

    AUC = Σ_{k<S} (q_{k+1} − q_k)·(c_k + c_{k+1}) / 2.

Deletion: lower is better (removing the pixels the map ranks first should kill the score); insertion:
higher is better. Baselines x̃: ``blur`` (a Gaussian blur of x, σ in pixels: Petsiuk's insertion
canvas), ``mean`` (each channel's mean over the image), ``min`` (the image's smallest value over all
channels: Quantus' ``"black"``) or a tensor broadcastable to the images.

Against Quantus ``PixelFlipping`` (a test oracle, ``tests/evaluate/test_faithfulness_parity.py``): with
``features_in_step = C·N/S`` its curve is c_1 … c_S here (it omits c_0, the unperturbed score) and its
AUC is ``np.trapz(c_1..c_S, dx=1)``, not normalised to [0, 1]; so ``S·AUC_here = AUC_quantus +
(c_0 + c_1)/2``. Its ``"mean"`` baseline is the mean over all channels of the partly perturbed
image, recomputed at every step, where ``mean`` here is the fixed per-channel mean of x. Quantus
removes ``features_in_step`` elements of the map broadcast to (C, H, W) per step; a map repeated over
the channels with a step of whole pixels gives the same images as here.

**ROAD** (Rong et al. 2022, "remove and debias"). At percentages p, the n = ⌊p·N/100⌋ pixels ranked
first (MoRF, most relevant first) or last (LeRF, least relevant first) by s_t are removed and
re-imputed by noisy linear imputation: each removed pixel takes the weighted mean of its 8 neighbours
(weight 1/6 for the 4 edge neighbours, 1/12 for the 4 corner ones, normalised over the neighbours
inside the image), removed neighbours being unknowns themselves, i.e. per channel the linear system

    d_i v_i − Σ_{j ∈ R, j ~ i} w_ij v_j = Σ_{j ∉ R, j ~ i} w_ij x_j,      d_i = Σ_{j ~ i} w_ij   (i ∈ R)

then v + σ·ε with ε ~ N(0, 1) (σ = ``noise``, 0.01 by default). The system is symmetric positive
definite (every component of R touches a kept pixel when n < N); it is solved for all (image, target,
percentage, channel) systems at once by conjugate gradients preconditioned with one multigrid
V-cycle (Galerkin coarse operators on 2×2 aggregates, Jacobi smoothing, an exact dense solve on the
coarsest level of at most 64 cells): 6–9 iterations from 32 to 256 px, where Jacobi-preconditioned
CG needs several hundred at 128 px. The curve is f_t at each percentage: MoRF lower is better, LeRF
higher is better; ``road_morf`` / ``road_lerf`` are their means over the percentages. Quantus
``ROAD`` solves the same system with SciPy's sparse solver (equal to 1e-4 at σ = 0) but scores
accuracy, [argmax f(x_p) = y], instead of the target score, and only MoRF.

**Faithfulness correlation** (Bhatt et al. 2020, as Quantus ``FaithfulnessCorrelation`` defines it):
for R random subsets S_r of ``subset_size`` pixels, x_r = x with S_r set to the baseline,

    FC_t = pearson_r( Σ_{i ∈ S_r} s_t(i),  f_t(x) − f_t(x_r) ),

higher is better. The subsets are drawn once and shared by every image, target and method, so one
forward pass per (image, run) serves all of them (Quantus draws them per image; equal given the same
subsets).

Every function takes ``score(images (n, C, H, W)) -> (n, n_outputs)`` and reads the column of each
target; the images of a step are built and scored ``batch_size`` at a time. Maps that are identical
for one image (CAM and Grad-CAM after normalisation; Eigen-CAM for every target) and steps that do not
depend on the map (q = 0 and q = 1) are scored once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from dermx.metrics import pearson

__all__ = [
    "Baseline",
    "Curves",
    "baseline_image",
    "curve_auc",
    "deletion_curves",
    "faithfulness_correlation",
    "faithfulness_runs",
    "gaussian_blur",
    "noisy_linear_imputation",
    "pixel_ranks",
    "road_curves",
]

Score = Callable[[Tensor], Tensor]
Baseline = Literal["blur", "mean", "min"] | Tensor

#: Conjugate-gradient iterations of the last :func:`noisy_linear_imputation` call.
LAST_ITERATIONS = 0


@dataclass(frozen=True)
class Curves:
    """Scores ``(B, T, K)`` at the positions ``x`` (K fractions in [0, 1], or percentages / 100)."""

    values: Tensor
    x: Tensor

    def auc(self) -> Tensor:
        """Trapezoid area ``(B, T)`` over ``x``."""
        return curve_auc(self.values, self.x)

    def mean(self) -> Tensor:
        """Mean score ``(B, T)`` over the positions (ROAD's summary)."""
        return self.values.mean(dim=-1)


def curve_auc(values: Tensor, x: Tensor) -> Tensor:
    """Σ_k (x_{k+1} − x_k)·(c_k + c_{k+1})/2 over the last dimension of ``values``."""
    x = x.to(values)
    return ((x[1:] - x[:-1]) * (values[..., 1:] + values[..., :-1]) / 2).sum(dim=-1)


def pixel_ranks(maps: Tensor) -> Tensor:
    """ρ(i): rank of each pixel in its map by decreasing value (0 = most relevant), ties by pixel
    index. ``(..., H, W)`` → ``(..., H·W)`` long."""
    flat = maps.flatten(-2)
    order = torch.sort(flat, dim=-1, descending=True, stable=True).indices
    return torch.empty_like(order).scatter_(-1, order, torch.arange(flat.shape[-1]).expand_as(order).contiguous())


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur, kernel radius ⌈3σ⌉ (at most the image size − 1), reflected edges."""
    if sigma <= 0:
        return images.clone()
    radius = max(1, min(math.ceil(3 * sigma), min(images.shape[-2:]) - 1))
    t = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = images.shape[1]
    x = F.pad(images, (radius, radius, 0, 0), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def baseline_image(images: Tensor, baseline: Baseline, blur_sigma: float = 5.0) -> Tensor:
    """The baseline x̃ ``(B, C, H, W)`` of each image (module docstring)."""
    if isinstance(baseline, Tensor):
        return baseline.to(images).expand_as(images)
    if baseline == "blur":
        return gaussian_blur(images, blur_sigma)
    if baseline == "mean":
        return images.mean(dim=(-2, -1), keepdim=True).expand_as(images)
    if baseline == "min":
        return images.amin(dim=(1, 2, 3), keepdim=True).expand_as(images)
    raise ValueError(f"unknown baseline {baseline!r}; expected blur, mean, min or a tensor")


def _unique_maps(maps: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Per image: the distinct maps ``(U_b, H, W)`` and, per target, the index of its map."""
    uniques, inverses = [], []
    for per_image in maps:
        unique, inverse = torch.unique(per_image.flatten(1), dim=0, return_inverse=True)
        uniques.append(unique.view(-1, *maps.shape[-2:]))
        inverses.append(inverse)
    return uniques, inverses


def _target_columns(targets: Tensor | Sequence[int], shape: tuple[int, int]) -> Tensor:
    columns = torch.as_tensor(targets, dtype=torch.long)
    return columns.expand(shape) if columns.ndim < 2 else columns


def _check(images: Tensor, maps: Tensor) -> None:
    if images.ndim != 4 or maps.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W) and maps (B, T, H, W); got {tuple(images.shape)} and "
                         f"{tuple(maps.shape)}")
    if images.shape[0] != maps.shape[0] or images.shape[-2:] != maps.shape[-2:]:
        raise ValueError(f"maps {tuple(maps.shape)} do not match images {tuple(images.shape)} "
                         "(same batch and pixel grid needed: resize maps to the input size)")
    if not torch.isfinite(maps).all():
        raise ValueError("maps contain NaN or infinite values")


def _run_jobs(score: Score, jobs: list[tuple[int, Any]], build: Callable[[list[tuple[int, Any]]], Tensor],
              batch_size: int) -> Tensor:
    """Score every job's image (built ``batch_size`` at a time): ``(n_jobs, n_outputs)``."""
    out = []
    with torch.no_grad():
        for start in range(0, len(jobs), batch_size):
            out.append(score(build(jobs[start:start + batch_size])).float())
    return torch.cat(out)


def deletion_curves(score: Score, images: Tensor, maps: Tensor, targets: Tensor | Sequence[int], *,
                    steps: int = 16, mode: Literal["deletion", "insertion"] = "deletion",
                    baseline: Baseline = "blur", blur_sigma: float = 5.0, batch_size: int = 64) -> Curves:
    """Deletion or insertion curves ``(B, T, steps + 1)`` of the maps ``(B, T, H, W)`` (module docstring).

    ``targets``: the output column of each map, ``(T,)`` or ``(B, T)``.
    """
    _check(images, maps)
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be deletion or insertion, got {mode!r}")
    b, t = maps.shape[:2]
    n_pixels = maps.shape[-2] * maps.shape[-1]
    columns = _target_columns(targets, (b, t))
    fractions = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
    counts = [round(float(q) * n_pixels) for q in fractions]
    base = baseline_image(images, baseline, blur_sigma)
    start, end = (images, base) if mode == "deletion" else (base, images)
    uniques, inverses = _unique_maps(maps)
    ranks = [pixel_ranks(u) for u in uniques]
    # A job is (image, (unique map, step)); steps removing nothing or everything share one job per image.
    jobs: list[tuple[int, Any]] = []
    index: dict[tuple[int, int, int], int] = {}
    for i in range(b):
        for k, n in enumerate(counts):
            for u in range(len(uniques[i])):
                key = (i, -1 if n in (0, n_pixels) else u, k)
                if key not in index:
                    index[key] = len(jobs)
                    jobs.append((i, (key[1], n)))

    def build(chunk: list[tuple[int, Any]]) -> Tensor:
        out = []
        for i, (u, n) in chunk:
            if n == 0:
                out.append(start[i])
            elif n == n_pixels:
                out.append(end[i])
            else:
                moved = (ranks[i][u] < n).view(1, *images.shape[-2:]).to(images.dtype)
                out.append(start[i] * (1 - moved) + end[i] * moved)
        return torch.stack(out)

    scores = _run_jobs(score, jobs, build, batch_size)
    job = torch.tensor([[[index[(i, -1 if n in (0, n_pixels) else int(inverses[i][j]), k)]
                          for k, n in enumerate(counts)] for j in range(t)] for i in range(b)])
    values = scores[job, columns[..., None].expand_as(job)]
    return Curves(values, fractions.float())


def noisy_linear_imputation(images: Tensor, removed: Tensor, *, noise: float = 0.01,
                            generator: torch.Generator | None = None, tol: float = 1e-4,
                            max_iter: int | None = None) -> Tensor:
    """ROAD's imputation of the ``removed`` pixels (module docstring).

    ``images (n, C, H, W)``, ``removed (n, H, W)`` bool. Conjugate gradients preconditioned by one
    multigrid V-cycle (:class:`_Multigrid`; in the images' dtype), from the mean of the kept pixels
    on the removed ones, until every system's residual is below ``tol`` times its right-hand side (or
    ``max_iter``, default H + W iterations). 6–9 iterations reach the default ``tol`` from 32 to
    256 px; the largest deviation from the exact solution is then about 4e-4 on 64–128 px images (a
    twentieth of ROAD's default noise σ); pass a smaller ``tol`` for exactness.
    """
    n, c, h, w = images.shape
    if removed.shape != (n, h, w):
        raise ValueError(f"removed must be (n, H, W) = {(n, h, w)}, got {tuple(removed.shape)}")
    if bool(removed.flatten(1).all(dim=1).any()):
        raise ValueError("cannot impute an image whose every pixel is removed")
    x = images
    mask = removed.to(x.dtype)[:, None]  # one system per (image, channel); the channels share the matrix
    degree = _neighbour_sum(torch.ones(1, 1, h, w, dtype=x.dtype, device=x.device))
    grid = _Multigrid(mask, degree, c)
    fine = grid.fine
    p = fine.bordered.clone()  # the search direction, inside a zero border like the levels' iterates
    ap = fine.t  # A p is spent before the V-cycle needs its workspace again
    known = 1 - mask
    torch.mul(x, known, out=p[..., 1:1 + h, 1:1 + w])
    rhs = fine.mask * fine.separable_sum(p).mul_(1 / 12)  # Σ_{j ∉ R} w_ij x_j = m ⊙ S(x ⊙ (1 − m)) / 12
    # first guess: the mean of the kept pixels (fewer iterations than a push-pull fill, on photographs too)
    mean = p.sum(dim=(2, 3), keepdim=True) / known.sum(dim=(2, 3), keepdim=True)
    v = fine.mask * mean
    p[..., 1:-1, 1:-1].copy_(v)
    limit = tol * grid.dot(rhs, rhs).sqrt().clamp(min=1e-300)
    r = rhs.sub_(fine.apply(p, ap))
    z = grid.v_cycle(r)
    p[..., 1:-1, 1:-1].copy_(z)
    rz = grid.dot(r, z)
    global LAST_ITERATIONS
    for LAST_ITERATIONS in range(max_iter or h + w):  # noqa: B007
        if bool((grid.dot(r, r).sqrt() <= limit).all()):
            break
        fine.apply(p, ap)
        denominator = grid.dot(p[..., 1:-1, 1:-1], ap)
        alpha = torch.where(denominator > 0, rz / denominator.clamp(min=1e-300), torch.zeros_like(rz)).to(v.dtype)
        v.addcmul_(alpha, p[..., 1:-1, 1:-1])
        r.addcmul_(alpha, ap, value=-1)
        z = grid.v_cycle(r)
        rz_new = grid.dot(r, z)
        beta = torch.where(rz > 0, rz_new / rz.clamp(min=1e-300), torch.zeros_like(rz)).to(v.dtype)
        torch.addcmul(z, beta, p[..., 1:-1, 1:-1], out=p[..., 1:-1, 1:-1])
        rz = rz_new
    v = v[..., :h, :w]
    if noise:
        v.add_(torch.randn(v.shape, generator=generator, dtype=v.dtype, device=v.device), alpha=noise)
    return torch.where(mask > 0, v, x)


#: The 8 neighbour offsets (dy, dx) of a stencil with their slot 3·(dy + 1) + dx + 1 in a level's
#: couplings W; slot 4, the pixel itself, is unused.
_OFFSETS = [(3 * (dy + 1) + dx + 1, dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def _quarters(v: Tensor, dims: int = -2) -> list[tuple[int, int, Tensor]]:
    """The four (a, b, v[..., a::2, b::2]) of an even-sized ``v``, as views; ``dims``: the first of
    its two spatial dimensions (−4 for the coarse levels' (h, w, n, C) layout)."""
    dims %= v.ndim
    h, w = v.shape[dims], v.shape[dims + 1]
    six = v.unflatten(dims + 1, (w // 2, 2)).unflatten(dims, (h // 2, 2))
    index = (slice(None),) * dims
    return [(a, b, six[(*index, slice(None), a, slice(None), b)]) for a in range(2) for b in range(2)]


def _even(v: Tensor, dims: int = -2) -> Tensor:
    """``v`` padded with zeros at the bottom and right to even height and width (1 becomes 2);
    ``dims`` as in :func:`_quarters`."""
    h, w = v.shape[dims], v.shape[dims + 1]
    return F.pad(v, (0, 0) * (-dims - 2) + (0, w % 2, 0, h % 2)) if h % 2 or w % 2 else v


def _galerkin(coupling: Tensor, boundary: Tensor) -> tuple[Tensor, Tensor]:
    r"""One Galerkin coarsening Pᵀ A P over 2×2 aggregates (odd sizes padded with empty cells).

    A is (A v)_i = d_i v_i − Σ_k W_{k,i} v_{i+k} over :data:`_OFFSETS`, with d_i = b_i + Σ_k W_{k,i}:
    b ≥ 0 (``boundary``) is the weight of the links to kept pixels. The coarse level is
    W^c_{K,I} = Σ_{i ∈ I, k: i+k ∈ I+K} W_{k,i} (links inside an aggregate drop out) and
    b^c_I = Σ_{i ∈ I} b_i. Carrying b instead of d sums only non-negative terms, where
    d^c = Σ_{i ∈ I} d_i − Σ_{i, i+k ∈ I} W_{k,i} would lose most of its digits to cancellation in
    float32 on the coarse levels. Layout of :func:`_coarse_levels`."""
    parts = [part for _, _, part in _quarters(_even(boundary, -4), -4)]
    coarse_boundary = parts[0] + parts[1]
    coarse_boundary.add_(parts[2]).add_(parts[3])
    coarse = boundary.new_zeros(9, *coarse_boundary.shape)
    for k, dy, dx in _OFFSETS:
        for a, b, part in _quarters(_even(coupling[k], -4), -4):
            slot = 3 * ((a + dy) // 2 + 1) + (b + dx) // 2 + 1  # the aggregate that the link reaches
            if slot != 4:
                coarse[slot].add_(part)
    return coarse, coarse_boundary


def _coarse_levels(mask: Tensor, degree: Tensor, smallest: int = 64) -> list[tuple[Tensor, Tensor]]:
    r"""The coarse operators of the imputation's multigrid, (W, d) per level, down to the first level
    of at most ``smallest`` cells; ``mask (n, 1, H, W)``, ``degree (1, 1, H, W)``.

    A level's operator is (A v)_I = d_I v_I − Σ_K W_{K,I} v_{I+K} over the 8 neighbours
    (:data:`_OFFSETS`), laid out with the systems innermost: W (9, h, w, n, 1), d (h, w, n, 1).
    Level 0, the imputation matrix itself, has W_{k,i} = m_i m_{i+k} w_k, d_i = m_i deg_i (m = 1 on
    removed pixels, 0 outside the image); each coarser level is the Galerkin product Pᵀ A P of the
    level above (:func:`_galerkin`), P the piecewise-constant prolongation from 2×2 aggregates.
    Pᵀ A P of a symmetric positive definite A is symmetric positive definite, so every level is.
    """
    mask, degree = _even(mask), _even(degree)
    n, _, h, w = mask.shape
    bordered = mask.new_zeros(h + 2, w + 2, n, 1)  # bordered by kept pixels
    bordered[1:-1, 1:-1].copy_(mask.permute(2, 3, 0, 1))

    def quarter(a: int, b: int) -> Tensor:  # m at fine offset (a, b) from the first pixel of each aggregate
        return bordered[1 + a:1 + a + h:2, 1 + b:1 + b + w:2]

    # Level 1 straight from the mask, in twelfths (small integers: exact); slot 4 sums the links
    # inside the aggregates.
    coupling = mask.new_zeros(9, h // 2, w // 2, n, 1)
    for _, dy, dx in _OFFSETS:
        for a in range(2):
            for b in range(2):
                slot = 3 * ((a + dy) // 2 + 1) + (b + dx) // 2 + 1
                coupling[slot].addcmul_(quarter(a, b), quarter(a + dy, b + dx), value=2 if dy == 0 or dx == 0 else 1)
    boundary = -coupling.sum(dim=0)  # b = m·deg − Σ_k W_k: what the links leave of d
    for a, b, own in _quarters((12 * degree).round().permute(2, 3, 0, 1), -4):
        boundary.addcmul_(quarter(a, b), own)
    coupling[4] = 0
    coupling, boundary = coupling.div_(12), boundary.div_(12)
    levels = [(coupling, boundary + coupling.sum(dim=0))]
    while boundary.shape[0] * boundary.shape[1] > smallest:
        coupling, boundary = _galerkin(coupling, boundary)
        levels.append((coupling, boundary + coupling.sum(dim=0)))
    return levels


#: Scale of the coarse-grid correction: piecewise-constant aggregation makes Pᵀ A P about twice too
#: stiff for a Laplacian, so its correction is too small; 1.5 is the usual over-correction (< 2, so the
#: preconditioner stays positive definite).
_OVERCORRECTION = 1.5


class _Level:
    """A coarse level of :class:`_Multigrid` at an even size: its operator (W, d), 1/d, and
    workspaces, laid out (h, w, n, C), the systems innermost, so that every shifted slice of the
    stencil is a long contiguous run even on the smallest levels. The iterate ``z`` lives inside a
    zero border, so the stencil reads it without padding."""

    def __init__(self, coupling: Tensor, diagonal: Tensor, channels: int) -> None:
        h, w, n, _ = diagonal.shape
        self.coupling = coupling
        self.diagonal = diagonal
        self.inverse = torch.where(diagonal > 0, 1 / diagonal.clamp(min=1e-30), torch.zeros_like(diagonal))
        self.bordered = diagonal.new_zeros(h + 2, w + 2, n, channels)
        self.z = self.bordered[1:-1, 1:-1]
        self.r = diagonal.new_zeros(h, w, n, channels)  # the restricted residual
        self.t = diagonal.new_empty(h, w, n, channels)

    def residual(self, r: Tensor) -> Tensor:
        """r − A z into ``t``: r − d z + Σ_K W_K z_{·+K}."""
        h, w = r.shape[:2]
        out = torch.addcmul(r, self.diagonal, self.z, value=-1, out=self.t)
        for k, dy, dx in _OFFSETS:
            out.addcmul_(self.coupling[k], self.bordered[1 + dy:1 + dy + h, 1 + dx:1 + dx + w])
        return out


class _DenseLevel:
    """The coarsest level (at most 64 cells): its operator as a dense matrix, inverted once by
    Cholesky (in float64), so that the V-cycle ends in an exact solve. Empty cells (d = 0, no
    unknowns, zero residual) get a unit diagonal. Same (h, w, n, C) layout as :class:`_Level`."""

    def __init__(self, coupling: Tensor, diagonal: Tensor, channels: int) -> None:
        h, w, n, _ = diagonal.shape
        cells = torch.arange(h * w, device=diagonal.device).view(h, w)
        diagonal = diagonal.reshape(h * w, n).T.double()  # (n, cells)
        matrix = torch.diag_embed(diagonal)
        for k, dy, dx in _OFFSETS:
            rows, columns = slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx))
            source = cells[rows, columns].flatten()
            matrix[:, source, source + dy * w + dx] -= coupling[k, rows, columns].reshape(-1, n).T.double()
        matrix.diagonal(dim1=1, dim2=2)[diagonal <= 0] = 1.0
        self.inverse = torch.cholesky_inverse(torch.linalg.cholesky(matrix)).to(coupling.dtype)
        self.r = coupling.new_zeros(h, w, n, channels)  # the restricted residual
        self.z = coupling.new_empty(h, w, n, channels)

    def solve(self, r: Tensor) -> Tensor:
        """A⁻¹ r into ``z``."""
        h, w, n, c = r.shape
        solution = torch.bmm(self.inverse, r.view(h * w, n, c).transpose(0, 1))
        self.z.view(h * w, n, c).copy_(solution.transpose(0, 1))
        return self.z


class _FineLevel(_Level):
    """Level 0: the imputation matrix as A v = m ⊙ ((deg + 1/3) v − S v / 12) for v zero outside the
    removed pixels (m = 1 on them), S the 3×3 sum with weights (1, 2, 1) ⊗ (1, 2, 1) in two 3-tap
    passes: the neighbour sum is (S v − 4 v)/12 (:func:`_neighbour_sum`)."""

    def __init__(self, mask: Tensor, degree: Tensor, channels: int) -> None:  # its own layout: no super()
        n, _, h, w = mask.shape
        self.mask = mask
        self.inverse = mask * torch.where(degree > 0, 1 / degree.clamp(min=1e-30), torch.zeros_like(degree))
        self.scale = mask * (degree + 1 / 3)
        self.bordered = mask.new_zeros(n, channels, h + 2, w + 2)
        self.z = self.bordered[..., 1:-1, 1:-1]
        self.t = mask.new_empty(n, channels, h, w)
        self.rows = mask.new_empty(n, channels, h, w + 2)
        self.sum = mask.new_empty(n, channels, h, w)

    def separable_sum(self, bordered: Tensor) -> Tensor:
        """S v of the v inside ``bordered`` (zero border) into ``sum``."""
        torch.add(bordered[..., :-2, :], bordered[..., 2:, :], out=self.rows).add_(bordered[..., 1:-1, :], alpha=2)
        rows = self.rows
        return torch.add(rows[..., :-2], rows[..., 2:], out=self.sum).add_(rows[..., 1:-1], alpha=2)

    def apply(self, bordered: Tensor, out: Tensor) -> Tensor:
        """A v into ``out``, v inside ``bordered`` (zero border)."""
        torch.mul(self.scale, bordered[..., 1:-1, 1:-1], out=out)
        return out.addcmul_(self.mask, self.separable_sum(bordered), value=-1 / 12)

    def residual(self, r: Tensor) -> Tensor:
        out = torch.addcmul(r, self.mask, self.separable_sum(self.bordered), value=1 / 12, out=self.t)
        return out.addcmul_(self.scale, self.z, value=-1)


class _Multigrid:
    """The imputation's operator and its multigrid hierarchy (:func:`_coarse_levels`) with their
    workspaces, on the image grid padded to even sizes with empty cells (kept pixels, no unknowns)."""

    def __init__(self, mask: Tensor, degree: Tensor, channels: int) -> None:
        self.fine = _FineLevel(_even(mask), _even(degree), channels)
        self.levels: list[_Level] = [self.fine]
        *middle, last = _coarse_levels(mask, degree)
        self.levels.extend(_Level(_even(coupling, -4), _even(diagonal, -4), channels) for coupling, diagonal in middle)
        self.coarsest = _DenseLevel(*last, channels)
        self.product = self.fine.sum  # S v is spent whenever an inner product is taken
        n, c, h, w = self.fine.t.shape
        self.half = mask.new_empty(n, c, h // 2, w // 2)

    def dot(self, a: Tensor, b: Tensor) -> Tensor:
        """Per-system (image, channel) inner products ``(n, C, 1, 1)``, as float64."""
        return torch.mul(a, b, out=self.product).sum(dim=(2, 3), keepdim=True).double()

    def v_cycle(self, r: Tensor, depth: int = 0) -> Tensor:
        """One V-cycle for A z = r: a Jacobi sweep, the residual summed over 2×2 aggregates (Pᵀ) and
        solved on the next level recursively (exactly on the coarsest, :class:`_DenseLevel`), the correction
        prolonged (P, onto the removed pixels at level 0) and scaled by :data:`_OVERCORRECTION`, a
        Jacobi sweep. Symmetric in r, so it is a valid preconditioner for conjugate gradients. Returns
        a view of the level's workspace, overwritten by the next call."""
        if depth == len(self.levels):
            return self.coarsest.solve(r)
        level = self.levels[depth]
        z = torch.mul(r, level.inverse, out=level.z)
        coarse = self.levels[depth + 1] if depth + 1 < len(self.levels) else self.coarsest
        if depth == 0:  # (n, C, h, w) to the coarse levels' (h, w, n, C) and back
            quarters = [part for _, _, part in _quarters(level.residual(r))]
            h, w = quarters[0].shape[-2:]
            restricted = torch.add(quarters[0], quarters[1], out=self.half).add_(quarters[2]).add_(quarters[3])
            coarse.r[:h, :w].copy_(restricted.permute(2, 3, 0, 1))
            correction = self.half.copy_(self.v_cycle(coarse.r, 1)[:h, :w].permute(2, 3, 0, 1))
            for (_, _, part), (_, _, removed) in zip(_quarters(z), _quarters(self.fine.mask), strict=True):
                part.addcmul_(removed, correction, value=_OVERCORRECTION)
        else:
            quarters = [part for _, _, part in _quarters(level.residual(r), -4)]
            h, w = quarters[0].shape[:2]
            torch.add(quarters[0], quarters[1], out=coarse.r[:h, :w]).add_(quarters[2]).add_(quarters[3])
            correction = self.v_cycle(coarse.r, depth + 1)[:h, :w]
            for _, _, part in _quarters(z, -4):  # the correction on empty cells is never read
                part.add_(correction, alpha=_OVERCORRECTION)
        return z.addcmul_(level.residual(r), level.inverse)


def _neighbour_sum(v: Tensor) -> Tensor:
    """Σ_j w_ij v_j over the 8 neighbours inside the image (zero padding), w = 1/6 for edge and 1/12
    for corner neighbours: the 3×3 kernel [[1, 2, 1], [2, 0, 2], [1, 2, 1]]/12 is (b bᵀ − 4δ)/12 with
    b = (1, 2, 1), so it runs as two 3-tap passes (many times faster than a one-channel ``conv2d``
    on large batches)."""
    padded = F.pad(v, (1, 1, 1, 1))
    rows = padded[..., :-2, :] + padded[..., 2:, :]
    rows.add_(padded[..., 1:-1, :], alpha=2)
    out = rows[..., :-2] + rows[..., 2:]
    return out.add_(rows[..., 1:-1], alpha=2).sub_(v, alpha=4).mul_(1 / 12)


def road_curves(score: Score, images: Tensor, maps: Tensor, targets: Tensor | Sequence[int], *,
                percentages: Sequence[float] = (10, 30, 50, 70, 90), order: Literal["morf", "lerf"] = "morf",
                noise: float = 0.01, seed: int = 0, batch_size: int = 64, tol: float = 1e-4) -> Curves:
    """ROAD curves ``(B, T, P)``: the target score after removing p % of the pixels, most (``morf``) or
    least (``lerf``) relevant first, and imputing them (module docstring)."""
    _check(images, maps)
    if order not in ("morf", "lerf"):
        raise ValueError(f"order must be morf or lerf, got {order!r}")
    if not percentages or not all(0 <= p < 100 for p in percentages):
        raise ValueError(f"percentages must lie in [0, 100), got {list(percentages)}")
    b, t = maps.shape[:2]
    n_pixels = maps.shape[-2] * maps.shape[-1]
    columns = _target_columns(targets, (b, t))
    counts = [int(n_pixels * p / 100) for p in percentages]
    uniques, inverses = _unique_maps(maps)
    ranks = [pixel_ranks(u) if order == "morf" else n_pixels - 1 - pixel_ranks(u) for u in uniques]
    jobs: list[tuple[int, Any]] = [(i, (u, n)) for i in range(b) for u in range(len(uniques[i])) for n in counts]
    generator = torch.Generator().manual_seed(seed)

    def build(chunk: list[tuple[int, Any]]) -> Tensor:
        stack = torch.stack([images[i] for i, _ in chunk])
        removed = torch.stack([(ranks[i][u] < n).view(images.shape[-2:]) for i, (u, n) in chunk])
        return noisy_linear_imputation(stack, removed, noise=noise, generator=generator, tol=tol)

    scores = _run_jobs(score, jobs, build, batch_size)
    offsets = torch.tensor([0, *[len(u) * len(counts) for u in uniques]]).cumsum(0)
    job = torch.stack([offsets[i] + inverses[i][:, None] * len(counts) + torch.arange(len(counts))
                       for i in range(b)])
    values = scores[job, columns[..., None].expand_as(job)]
    return Curves(values, torch.tensor([p / 100 for p in percentages]))


def faithfulness_correlation(score: Score, images: Tensor, maps: Tensor, targets: Tensor | Sequence[int], *,
                             n_runs: int = 100, subset_size: int = 224, baseline: Baseline = "min",
                             subsets: Tensor | None = None, seed: int = 0, batch_size: int = 64) -> Tensor:
    """Faithfulness correlation ``(B, T)`` (module docstring); NaN where either side is constant.

    ``subsets``: ``(n_runs, subset_size)`` pixel indices (flat, row-major), else drawn from ``seed``.
    """
    sums, deltas = faithfulness_runs(score, images, maps, targets, n_runs=n_runs, subset_size=subset_size,
                                     baseline=baseline, subsets=subsets, seed=seed, batch_size=batch_size)
    return pearson(sums, deltas).float()


def faithfulness_runs(score: Score, images: Tensor, maps: Tensor, targets: Tensor | Sequence[int], *,
                      n_runs: int = 100, subset_size: int = 224, baseline: Baseline = "min",
                      subsets: Tensor | None = None, seed: int = 0, batch_size: int = 64) -> tuple[Tensor, Tensor]:
    """The two sides of the faithfulness correlation, run by run: ``(Σ_{i ∈ S_r} s_t(i), f_t(x) − f_t(x_r))``,
    each ``(B, T, R)`` float64; :func:`pearson` of them is :func:`faithfulness_correlation`. Kept apart so
    that an interval can resample the runs (the random subsets) as well as the images."""
    _check(images, maps)
    b, t = maps.shape[:2]
    n_pixels = maps.shape[-2] * maps.shape[-1]
    columns = _target_columns(targets, (b, t))
    if subsets is None:
        generator = torch.Generator().manual_seed(seed)
        subsets = torch.stack([torch.randperm(n_pixels, generator=generator)[:subset_size] for _ in range(n_runs)])
    subsets = subsets.long()
    chosen = torch.zeros(len(subsets), n_pixels, dtype=images.dtype).scatter_(1, subsets, 1.0)
    base = baseline_image(images, baseline)
    jobs: list[tuple[int, Any]] = [(i, r) for i in range(b) for r in range(-1, len(subsets))]

    def build(chunk: list[tuple[int, Any]]) -> Tensor:
        out = []
        for i, r in chunk:
            if r == -1:
                out.append(images[i])
            else:
                m = chosen[r].view(1, *images.shape[-2:])
                out.append(images[i] * (1 - m) + base[i] * m)
        return torch.stack(out)

    scores = _run_jobs(score, jobs, build, batch_size).view(b, len(subsets) + 1, -1)
    picked = scores.gather(2, columns[:, None, :].expand(-1, len(subsets) + 1, -1))  # (B, R+1, T)
    deltas = (picked[:, :1] - picked[:, 1:]).transpose(1, 2).double()  # (B, T, R)
    sums = (maps.flatten(-2).double() @ chosen.double().T)  # (B, T, R)
    return sums, deltas

