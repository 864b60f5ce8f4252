"""The dermx web service: :func:`create_app` (FastAPI) with micro-batching, interventions on kept predictions
and an upload page."""

from dermx._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(("BodyLimit", "ServiceOptionError", "create_app", "error_response"), ".app"),
        **dict.fromkeys(("Batcher", "QueueFullError"), ".batching"),
        **dict.fromkeys(("PredictionCache",), ".cache"),
        **dict.fromkeys(("ACCEPTED_FORMATS", "DEFAULT_MAX_DECODES", "DEFAULT_MAX_PIXELS", "UploadError",
                         "UploadLimits", "check_upload"), ".uploads"),
    },
)
