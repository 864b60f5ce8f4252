"""Text for messages: names that may be arbitrarily long (a file name, an upload's name, a cell of a
file) are shortened before they are printed, logged or answered, so one bad input cannot flood a
terminal or a response."""

from __future__ import annotations

import re

#: Longest name shown whole in a message; a longer one keeps its start and end (:func:`shorten`).
NAME_LIMIT = 160


def shorten(name: str, limit: int = NAME_LIMIT) -> str:
    """``name`` when it has at most ``limit`` characters; else its first ``limit`` − 40 characters, ``…``,
    its last 20 and the total length: ``abc…xyz (1,000,000 characters)``."""
    if len(name) <= limit:
        return name
    head = max(limit - 40, 1)
    return f"{name[:head]}…{name[-20:]} ({len(name):,} characters)"


def shorten_words(message: str, limit: int = NAME_LIMIT) -> str:
    """``message`` with every run of more than ``limit`` non-space characters (a path, a name) shortened
    by :func:`shorten`: the one guard of a message assembled from names that were not shortened."""
    if len(message) <= limit:
        return message
    return re.sub(rf"\S{{{limit + 1},}}", lambda m: shorten(m.group(0), limit), message)
