"""Multi-target CAM explanations: every target's map from one forward pass per batch.

Entry points: :func:`explain` (one call) and :class:`CamEngine` (reusable); methods in
:mod:`dermx.explain.methods`, gradient routes in :mod:`dermx.explain.routes`, reference maps in
:mod:`dermx.explain.baselines`.
"""

from dermx._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(("baseline_like", "gaussian_maps", "random_maps", "uniform_maps"), ".baselines"),
        **dict.fromkeys(("CamEngine", "CamResult", "explain"), ".engine"),
        **dict.fromkeys(("default_layer_name", "find_layer"), ".layers"),
        **dict.fromkeys(("METHODS", "get_method"), ".methods"),
        **dict.fromkeys(("ROUTES",), ".routes"),
        **dict.fromkeys(("OutputLayout", "Target"), ".targets"),
    },
)
