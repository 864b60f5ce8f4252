"""The benchmark report: figures, self-contained HTML, CSV tables and the run manifest."""

from dermx._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(("fmt", "headline_frame", "render_report", "strata_frame"), ".html"),
        **dict.fromkeys(("headline_table",), ".terminal"),
    },
)
