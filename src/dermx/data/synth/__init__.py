"""Synthetic DermXDB: an embedded, known-answer dataset in the real release's format.

>>> summary = generate("synth", n_images=60, seed=1, progress=False)   # doctest: +SKIP
>>> truth = load_ground_truth("synth", "synth_00001")                   # (16, H, W) bool

Images of skin with lesions drawn per characteristic from per-diagnosis profiles, simulated raters
who outline them with realistic disagreement, and the files a real DermXDB release has, so that the
whole pipeline can be checked against known answers (see :mod:`dermx.data.synth.writer`).
"""

from dermx.data.synth.config import RaterModel, SynthConfig, SynthSummary
from dermx.data.synth.generate import generate, generate_from_config
from dermx.data.synth.montage import montage
from dermx.data.synth.writer import load_ground_truth, read_manifest, watermark_mask

__all__ = [
    "RaterModel",
    "SynthConfig",
    "SynthSummary",
    "generate",
    "generate_from_config",
    "load_ground_truth",
    "montage",
    "read_manifest",
    "watermark_mask",
]
