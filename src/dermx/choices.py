"""Every closed choice a user makes, in one place: one ``Literal`` per set, one spelling per value.

The spelling here is the one every output file writes (``summary.json``, ``leaderboard.json``,
checkpoints) and the one the command line accepts; the command line parses each choice before any
work starts (:func:`dermx.cli_common.choice`), and a wrong value is a usage error listing these. Only
standard-library imports: ``dermx --help`` loads this module.

=====================  ======================================================================
``CamMethod``          a CAM method of the engine (:mod:`dermx.explain.methods`); papers' spellings
                       (``Grad-CAM++``) are read through :func:`method_name`
``FusionRule``         how raters' masks are fused (:mod:`dermx.data.fusion`)
``ResolutionPolicy``   how an image fits the model input (:mod:`dermx.geometry`)
``ModelKind``          the network and loss of a model (:mod:`dermx.models`)
``LabelRule``          when a characteristic counts as present in training labels
``Selection``          which (image, map) pairs a benchmark statistic is computed on
``EvalMapSize``        where the benchmark compares maps: the model input or each image's pixels
``StoredMapSize``      where ``dermx cv`` stores maps: the CAM grid or the model input
``Protocol``           the leaderboard's agreement protocol
``BottleneckMode``     how a concept-bottleneck (``cbm``) model's diagnosis head is trained (Koh et al.)
``ShardStrategy``      how the map-computing commands share images among processes
                       (:mod:`dermx.compute.shards`)
``ProfileSet``         which characteristics the synthetic classes show (:mod:`dermx.data.synth.profiles`)
=====================  ======================================================================
"""

from __future__ import annotations

from typing import Literal, get_args

CamMethod = Literal["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "cam", "scorecam", "eigencam"]
FusionRule = Literal["mean", "relative", "any", "majority", "all"]
ResolutionPolicy = Literal["pad", "crop", "squash"]
ModelKind = Literal["dx-only", "dermx", "dermx+", "cbm"]
LabelRule = Literal["any", "majority"]
Selection = Literal["present", "predicted", "correct"]
EvalMapSize = Literal["input", "native"]
StoredMapSize = Literal["features", "input"]
Protocol = Literal["dermx", "followup"]
BottleneckMode = Literal["joint", "sequential", "independent"]
ShardStrategy = Literal["auto", "ddp"]
ProfileSet = Literal["overlapping", "distinct"]


def method_name(name: str) -> CamMethod:
    """The one spelling of the CAM method called ``name``: case, ``-`` and ``_`` are ignored and
    ``plusplus`` reads ``++`` (``"Grad-CAM++"`` → ``"gradcam++"``); :class:`ValueError` for an unknown name."""
    key = name.lower().replace("-", "").replace("_", "").replace("plusplus", "++")
    methods: tuple[str, ...] = get_args(CamMethod)
    if key not in methods:
        raise ValueError(f"unknown CAM method {name!r}; methods: {', '.join(methods)}")
    return key  # type: ignore[return-value]
