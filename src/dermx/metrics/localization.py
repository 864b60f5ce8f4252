r"""Localization scores of a saliency map against a fuzzy reference map.

Scores that are usually computed on binary masks, generalised to a reference ``y`` with memberships
in [0, 1] (a binary mask gives back the usual definitions). ``saliency`` ``s`` is any finite map
(non-negative for the energy score); shapes follow the broadcasting rules of
:mod:`dermx.metrics.fuzzy`: same number of dims, same pixel grid ``(H, W)`` in the last two dims,
broadcastable leading dims. All scores are in [0, 1], higher is better, and returned as
:class:`~dermx.metrics.Scores` (NaN where undefined).

Pointing game (as papers define it)
    A hit is 1 when the map's maximum lies within ``r`` pixels (Euclidean) of the reference, binarised
    as ``y > 0`` (outlined by at least one rater), else 0: ``[max {y(x) : |x − argmax s| ≤ r} > 0]``,
    with the tolerance ``r`` stated beside every figure (TorchRay's default is 15 px at the
    model input). Ties: when several pixels share the maximum, the hit is their mean (the hit rate of
    breaking the tie at random; a constant map scores the share of pixels within ``r`` of the
    reference). Undefined when the reference is empty (Σy = 0): no map can hit it. A map without
    pixels (an ``H × W`` grid with ``H·W = 0``) has no maximum: ``ValueError``.

Fuzzy pointing game (dermx's variant)
    The hit weight is the reference membership at the map's maximum, ``y(argmax s)``; with a
    tolerance of ``r`` pixels, the largest membership within ``r`` of it. Ties and undefined values as
    above. On a binary reference it equals the pointing game.

Energy-based pointing
    The share of the map's mass on the reference, weighted by membership: ``Σ s·y / Σ s``.
    Undefined for an all-zero map (Σs = 0), and, as the pointing game, AUC and sensitivity, for an
    empty reference (Σy = 0): there is nothing to point at, so 0 would be a score the map did not earn.

ROC AUC
    Each pixel ``x`` is a positive sample with weight ``y(x)`` and a negative sample with weight
    ``1 − y(x)``, scored by ``s(x)``::

        AUC = Σ_{x, x'} y(x)·(1 − y(x'))·([s(x) > s(x')] + ½·[s(x) = s(x')]) / (Σy · Σ(1 − y))

    i.e. ``sklearn.metrics.roc_auc_score`` on every pixel twice (label 1 with weight y, label 0 with
    weight 1 − y). Undefined when Σy = 0 or Σ(1 − y) = 0. Computed without pairs: each map's pixels
    are sorted once into runs of equal score, each reference's y and 1 − y are summed per run, and
    every run's negative weight is credited with the positive weight of the higher runs plus half its
    own (Mann–Whitney with ties); sums accumulate in float64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dermx.metrics._validation import check_finite, check_pair, check_unit_interval
from dermx.metrics.scores import Scores, mark_undefined, ratio

_PIXELS = (-2, -1)


def _max_shifted(acc: Tensor, src: Tensor, offset: int, dim: int) -> None:
    """In place, ``acc[i] = max(acc[i], src[i + offset])`` along ``dim`` where ``i + offset`` is inside."""
    size = acc.shape[dim]
    if abs(offset) >= size:
        return
    dst = acc.narrow(dim, max(0, -offset), size - abs(offset))
    torch.maximum(dst, src.narrow(dim, max(0, offset), size - abs(offset)), out=dst)


def dilate(reference: Tensor, radius: float) -> Tensor:
    """Grey dilation of membership maps by a Euclidean disc: ``max {y(x') : |x' − x| ≤ radius}``.

    The disc is taken row by row: row ``dy`` spans ``|dx| ≤ h(dy) = ⌊√(r² − dy²)⌋``. The horizontal
    running maximum is widened one pixel at a time (``h → h + 1`` is a max over the neighbours), and
    after reaching each half-width it is merged, shifted by ``dy``, into the rows that need it: about
    ``4r`` element-wise maxima whatever the image size. Outside the image nothing is counted.
    """
    if radius < 0 or not math.isfinite(radius):
        raise ValueError(f"tolerance must be a finite number of pixels >= 0, got {radius}")
    r2 = math.floor(radius * radius)
    reach = math.floor(radius)
    rows_by_half_width: dict[int, list[int]] = {}
    for dy in range(-reach, reach + 1):
        rows_by_half_width.setdefault(math.isqrt(r2 - dy * dy), []).append(dy)
    band = reference.clone()
    out = torch.zeros_like(reference)
    for half in range(max(rows_by_half_width) + 1):
        if half:
            previous = band.clone()
            _max_shifted(band, previous, -1, dim=-1)
            _max_shifted(band, previous, 1, dim=-1)
        for dy in rows_by_half_width.get(half, []):
            _max_shifted(out, band, dy, dim=-2)
    return out


def fuzzy_pointing_game(saliency: Tensor, reference: Tensor, *, tolerance: float = 0.0) -> Scores:
    """Fuzzy pointing game: ``y`` at the map's maximum, or the largest ``y`` within ``tolerance`` pixels.

    Ties are averaged: ``hit = Σ_{x ∈ M} y_r(x) / |M|`` with ``M`` the pixels where ``s`` is maximal
    and ``y_r`` the reference dilated by a disc of radius ``tolerance``. Undefined where Σy = 0;
    ``ValueError`` on a grid without pixels.
    """
    s = check_finite("saliency", saliency)
    y = check_unit_interval("reference", reference)
    leading = check_pair("saliency", s, "reference", y)
    if s.shape[-2] * s.shape[-1] == 0:
        raise ValueError(f"pointing game needs at least one pixel, got a {s.shape[-2]}x{s.shape[-1]} grid "
                         f"(saliency shape {tuple(s.shape)})")
    reach = dilate(y, tolerance) if tolerance else y
    at_max = (s == s.amax(dim=_PIXELS, keepdim=True)).to(y.dtype)
    hits = (at_max * reach).sum(dim=_PIXELS) / at_max.sum(dim=_PIXELS)
    return mark_undefined(hits, (y.sum(dim=_PIXELS) == 0).expand(leading))


def pointing_game(saliency: Tensor, reference: Tensor, *, tolerance: float = 0.0) -> Scores:
    """The pointing game as papers define it: 1 when the map's maximum lies within ``tolerance`` pixels
    of the reference binarised at ``y > 0``, else 0 (ties averaged); undefined where Σy = 0."""
    y = check_unit_interval("reference", reference)
    return fuzzy_pointing_game(saliency, (y > 0).to(y.dtype), tolerance=tolerance)


def energy_pointing(saliency: Tensor, reference: Tensor) -> Scores:
    """Energy-based pointing game ``Σ s·y / Σ s`` (non-negative ``s``); undefined where Σs = 0 or Σy = 0.

    For ``s`` in [0, 1] this is the fuzzy precision under the product t-norm.
    """
    s = check_finite("saliency", saliency, nonnegative=True)
    y = check_unit_interval("reference", reference)
    leading = check_pair("saliency", s, "reference", y)
    share = ratio((s * y).sum(dim=_PIXELS), s.sum(dim=_PIXELS).expand(leading))
    return mark_undefined(share.values, share.undefined | (y.sum(dim=_PIXELS) == 0).expand(leading))


def roc_auc(saliency: Tensor, reference: Tensor) -> Scores:
    """Weighted ROC AUC of ``saliency`` against membership ``reference`` (module doc for the formula).

    Undefined where the reference has no positive (Σy = 0) or no negative (Σ(1 − y) = 0) weight.
    """
    s = check_finite("saliency", saliency)
    y = check_unit_interval("reference", reference)
    leading = check_pair("saliency", s, "reference", y)
    n_pix = s.shape[-2] * s.shape[-1]
    # Rank the distinct scores of each saliency map once (run 0 = highest score), on the map's own
    # shape; every broadcast reference then only needs one scatter of its memberships into runs.
    ranked, order = s.reshape(*s.shape[:-2], n_pix).sort(dim=-1, descending=True)
    is_start = torch.ones_like(ranked, dtype=torch.bool)
    is_start[..., 1:] = ranked[..., 1:] != ranked[..., :-1]
    run = torch.empty_like(order).scatter_(-1, order, is_start.cumsum(dim=-1) - 1)
    memberships = y.reshape(*y.shape[:-2], n_pix).double().expand(*leading, n_pix)
    runs = run.expand(*leading, n_pix)
    pos = memberships.new_zeros(*leading, n_pix).scatter_add_(-1, runs, memberships)
    # Negative weights are summed from 1 − y itself: run size − Σy would cancel to 0 (or worse) when
    # memberships lie within rounding of 1.
    neg = memberships.new_zeros(*leading, n_pix).scatter_add_(-1, runs, 1 - memberships)
    # A run's negative weight is beaten by the positive weight of all higher runs and, with half
    # credit, by the positive weight tied with it: Σ_g neg_g·(Σ_{h<g} pos_h + pos_g/2).
    credit = pos.cumsum(dim=-1).sub_(pos, alpha=0.5)
    area = torch.linalg.vecdot(neg, credit)
    auc = ratio(area, pos.sum(dim=-1) * neg.sum(dim=-1))
    return Scores(values=auc.values.to(torch.result_type(s, y)), undefined=auc.undefined)
