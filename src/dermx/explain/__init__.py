"""Multi-target CAM explanations: every target's map from one forward pass per batch.

Entry points: :func:`explain` (one call) and :class:`CamEngine` (reusable); methods in
:mod:`dermx.explain.methods`, gradient routes in :mod:`dermx.explain.routes`, reference maps in
:mod:`dermx.explain.baselines`.
"""

from dermx.explain.baselines import baseline_like, gaussian_maps, random_maps, uniform_maps
from dermx.explain.engine import CamEngine, CamResult, explain
from dermx.explain.layers import default_layer_name, find_layer
from dermx.explain.methods import METHODS, get_method
from dermx.explain.routes import ROUTES
from dermx.explain.targets import OutputLayout, Target

__all__ = [
    "METHODS",
    "ROUTES",
    "CamEngine",
    "CamResult",
    "OutputLayout",
    "Target",
    "baseline_like",
    "default_layer_name",
    "explain",
    "find_layer",
    "gaussian_maps",
    "get_method",
    "random_maps",
    "uniform_maps",
]
