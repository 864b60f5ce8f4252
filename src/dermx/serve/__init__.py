"""The dermx web service: :func:`create_app` (FastAPI) with micro-batching and an upload page."""

from dermx._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(("BodyLimit", "create_app"), ".app"),
        **dict.fromkeys(("Batcher", "QueueFullError"), ".batching"),
        **dict.fromkeys(("ACCEPTED_FORMATS", "UploadError", "UploadLimits", "check_upload"), ".uploads"),
    },
)
