"""Diagnose and explain new images: :class:`Predictor` (Python API) and ``dermx predict`` (CLI)."""

from dermx._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(("ImageSource", "open_image"), ".io"),
        **dict.fromkeys(("Predictor", "PreparedImage", "UncalibratedError"), ".predictor"),
        **dict.fromkeys(("CharacteristicResult", "Features", "Intervention", "Prediction"), ".result"),
    },
)
