"""The one home of dermx's version: pyproject.toml's ``version``, read from the installed distribution.

Checkpoints, predictions, the service and run manifests record :data:`__version__`; ``dermx.__version__``
and ``dermx --version`` are this value.
"""

from __future__ import annotations

from importlib import metadata

__all__ = ["__version__"]


def _installed_version() -> str:
    """The installed distribution's version; ``0+unknown`` for a source tree that is not installed."""
    try:
        return metadata.version("dermx")
    except metadata.PackageNotFoundError:
        return "0+unknown"


__version__ = _installed_version()
