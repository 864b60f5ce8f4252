"""The one way dermx gets matplotlib: off-screen (Agg) and with user strings drawn as plain text.

Figures carry names users chose (model names, class names, file stems); matplotlib would read a ``$...$``
pair in them as mathematics and fail on, or silently reformat, an ordinary string such as ``cost$\\frac$``.
:func:`pyplot` turns mathtext parsing off (``text.parse_math``) for the figures of the process, so every
label is drawn as written.
"""

from __future__ import annotations

from types import ModuleType

__all__ = ["pyplot"]


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend with ``text.parse_math`` off (module docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False
    import matplotlib.pyplot as plt

    return plt
