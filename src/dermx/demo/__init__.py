"""The end-to-end demo on synthetic data (``dermx demo``)."""

from dermx._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(("DemoConfig", "DemoResult", "STAGES", "run_demo"), ".pipeline"),
        **dict.fromkeys(("Check", "demo_checks"), ".checks"),
    },
)
