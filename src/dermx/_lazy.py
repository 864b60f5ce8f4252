"""Lazy re-exports (PEP 562): a package lists its public names and imports them on first use, so
that importing a package, or the ``dermx`` command, does not load PyTorch until it is needed."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[list[str], Callable[[str], Any],
                                                                    Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package``.

    ``exports`` maps each public name to the module defining it, relative to ``package``
    (``".dataset"``) or absolute; a name mapped to its own module path (``"vocab": "dermx.vocab"``)
    exports the module itself.
    """
    names = sorted(exports)

    def getattr_(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        loaded = importlib.import_module(module, package)
        value = loaded if loaded.__name__ == f"{package}.{name}" else getattr(loaded, name)
        setattr(sys.modules[package], name, value)
        return value

    def dir_() -> list[str]:
        return names

    return names, getattr_, dir_
