"""Files written whole or not at all.

A writer writes to a temporary file beside the target (``.<name>.<process>.<thread>.part``: same
folder, so same file system, and no two writers share one) and renames it over the target
(:func:`os.replace`, atomic on POSIX and Windows). A run killed while writing leaves the previous file,
or none, never a torn one; the temporary file is removed when the writing fails. (Against a power cut
the data would also need ``fsync``: this guards against a killed process, which is what interrupts a
training run.)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb", **options: Any) -> Iterator[IO[Any]]:
    """An open file (``mode`` ``"wb"`` or ``"w"``, ``options`` as for :func:`open`) whose content replaces
    ``path`` when the ``with`` block ends without an error (module docstring); the folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        with partial.open(mode, **options) as handle:
            yield handle
        partial.replace(path)
    except BaseException:
        with suppress(FileNotFoundError):
            partial.unlink()
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_write(path) as handle:
        handle.write(data)
    return Path(path)
