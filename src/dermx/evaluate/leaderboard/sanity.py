r"""Sanity checks of saliency maps (Adebayo et al. 2018): do the maps depend on what the model learned?

**Cascading model-parameter randomisation (MPRT).** The layers that own parameters (every module with
a ``reset_parameters`` method, Quantus' rule) are re-initialised one after another from the output end
(reverse registration order: the heads first, the stem last), each with ``torch.manual_seed(seed + 1)``
before its ``reset_parameters()`` (Quantus' ``top_down`` order and seeding, so both randomise alike).
After step l (layers 1..l randomised) the maps of every target are recomputed and compared with the
trained model's maps, per (image, target):

* Spearman rank correlation: Pearson's r of the average ranks (ties share their mean rank), as
  ``scipy.stats.spearmanr``;
* SSIM (Wang et al. 2004) as ``skimage.metrics.structural_similarity`` computes it with its defaults
  (Quantus' ``ssim``): 7×7 uniform window, K₁ = 0.01, K₂ = 0.03, sample covariances (÷ (n − 1)),
  ``data_range`` = max − min over both maps, mean over the windows lying fully inside the map:

      SSIM = mean_w [(2 μ_a μ_b + C₁)(2 σ_ab + C₂)] / [(μ_a² + μ_b² + C₁)(σ_a² + σ_b² + C₂)],
      C₁ = (K₁ L)², C₂ = (K₂ L)².

A method whose maps reflect the model loses similarity fast; **lower is better** for the similarity
after full randomisation (``mprt_spearman``, ``mprt_ssim``). Undefined (NaN) where a map is constant
(Spearman) or both maps are constant (SSIM).

**Random logit** (Sixt et al. 2020, as Quantus ``RandomLogit``): SSIM between the map of the target and
the map of another class of the same head drawn at random; lower is better (the map depends on the
class asked for).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["average_ranks", "cascading_randomisation", "random_logit", "randomisation_layers", "spearman",
           "ssim"]



def randomisation_layers(model: nn.Module) -> list[str]:
    """Names of the modules MPRT re-initialises, in cascade order (output end first)."""
    return [name for name, module in model.named_modules() if hasattr(module, "reset_parameters")][::-1]


def cascading_randomisation(model: nn.Module, seed: int = 42) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(layer, model with this and every earlier layer of the cascade randomised)``.

    The model is deep-copied once (the original is never touched); the same copy is yielded at every
    step, further randomised, in eval mode. Each layer's new weights are drawn on the CPU and copied to the
    model's device, so a GPU run randomises exactly as a CPU run does.
    """
    randomised = copy.deepcopy(model).eval()
    modules = dict(randomised.named_modules())
    for name in randomisation_layers(randomised):
        drawn = copy.deepcopy(modules[name]).cpu()
        torch.manual_seed(seed + 1)
        drawn.reset_parameters()
        modules[name].load_state_dict(drawn.state_dict())
        yield name, randomised


def average_ranks(maps: Tensor) -> Tensor:
    """Ranks 1..n of the pixels of maps ``(..., H, W)`` → ``(..., H·W)`` float64, ties sharing their
    mean rank."""
    x = maps.flatten(-2).double()
    n = x.shape[-1]
    flat = x.reshape(-1, n)
    values, order = torch.sort(flat, dim=-1, stable=True)
    new_group = torch.ones_like(values, dtype=torch.bool)
    new_group[:, 1:] = values[:, 1:] != values[:, :-1]
    group = new_group.cumsum(dim=-1) - 1 + torch.arange(flat.shape[0])[:, None] * n  # unique over rows
    position = torch.arange(n, dtype=torch.float64).expand_as(values).reshape(-1)
    total = torch.zeros(flat.numel(), dtype=torch.float64).index_add_(0, group.reshape(-1), position)
    count = torch.zeros(flat.numel(), dtype=torch.float64).index_add_(0, group.reshape(-1), torch.ones_like(position))
    mean_rank = (total / count.clamp(min=1))[group.reshape(-1)].view_as(values) + 1
    return torch.empty_like(mean_rank).scatter_(-1, order, mean_rank).view(x.shape)


def spearman(a: Tensor, b: Tensor, *, a_ranks: Tensor | None = None) -> Tensor:
    """Spearman's ρ between maps ``(..., H, W)`` → ``(...)``, float64; NaN when a map is constant.

    ``a_ranks``: :func:`average_ranks` of ``a`` if already computed (MPRT compares the same trained
    maps with every randomisation step's)."""
    ra = average_ranks(a) if a_ranks is None else a_ranks
    rb = average_ranks(b)
    ra, rb = ra - ra.mean(dim=-1, keepdim=True), rb - rb.mean(dim=-1, keepdim=True)
    denominator = ra.norm(dim=-1) * rb.norm(dim=-1)
    return torch.where(denominator > 0, (ra * rb).sum(dim=-1) / denominator.clamp(min=1e-300),
                       torch.full_like(denominator, math.nan))


def ssim(a: Tensor, b: Tensor, win_size: int = 7, k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """SSIM between maps ``(..., H, W)`` → ``(...)``, float64, as scikit-image's defaults (module
    docstring); NaN when both maps are constant (zero data range)."""
    if min(a.shape[-2:]) < win_size:
        raise ValueError(f"maps of {tuple(a.shape[-2:])} are smaller than the SSIM window {win_size}")
    shape = a.shape[:-2]
    x = a.double().reshape(-1, 1, *a.shape[-2:])
    y = b.double().reshape(-1, 1, *b.shape[-2:])
    data_range = torch.maximum(x.amax(dim=(1, 2, 3)), y.amax(dim=(1, 2, 3))) - \
        torch.minimum(x.amin(dim=(1, 2, 3)), y.amin(dim=(1, 2, 3)))
    n = win_size * win_size
    pool = lambda v: F.avg_pool2d(v, win_size, stride=1)  # noqa: E731  windows fully inside
    ux, uy = pool(x), pool(y)
    cov_norm = n / (n - 1)
    vx = cov_norm * (pool(x * x) - ux * ux)
    vy = cov_norm * (pool(y * y) - uy * uy)
    vxy = cov_norm * (pool(x * y) - ux * uy)
    c1 = ((k1 * data_range) ** 2)[:, None, None, None]
    c2 = ((k2 * data_range) ** 2)[:, None, None, None]
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    out = s.mean(dim=(1, 2, 3))
    return torch.where(data_range > 0, out, torch.full_like(out, math.nan)).view(shape)


def random_logit(maps: Tensor, columns: Tensor, head_columns: Tensor, seed: int = 0,
                 others: Tensor | None = None) -> Tensor:
    """SSIM ``(B,)`` between each image's map of ``columns[b]`` and of another column drawn uniformly
    from ``head_columns`` (the same head's other classes), or of ``others[b]`` when given.

    ``maps (B, N, H, W)`` holds every output's map in column order.
    """
    if others is None:
        generator = torch.Generator().manual_seed(seed)
        drawn = []
        for c in columns.tolist():
            choices = head_columns[head_columns != c]
            drawn.append(int(choices[torch.randint(len(choices), (1,), generator=generator)]))
        others = torch.tensor(drawn)
    elif bool((others == columns).any()):
        raise ValueError("others must differ from columns: the random-logit test compares two classes")
    index = torch.arange(maps.shape[0])
    return ssim(maps[index, columns], maps[index, others])
