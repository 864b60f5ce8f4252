"""Synthetic DermXDB: an embedded, known-answer dataset in the real release's format.

>>> summary = generate("synth", n_images=60, seed=1, progress=False)   # doctest: +SKIP
>>> truth = load_ground_truth("synth", "synth_00001")                   # (16, H, W) bool

Images of skin with lesions drawn per characteristic from per-diagnosis profiles, simulated raters
who outline them with realistic disagreement, and the files a real DermXDB release has, so that the
whole pipeline can be checked against known answers (see :mod:`dermx.data.synth.writer`).
"""

from dermx._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(("RaterModel", "SynthConfig", "SynthSummary"), ".config"),
        **dict.fromkeys(("generate", "generate_from_config"), ".generator"),
        **dict.fromkeys(("montage",), ".figures"),
        **dict.fromkeys(("load_ground_truth", "read_synth_manifest", "watermark_mask"), ".writer"),
    },
)
