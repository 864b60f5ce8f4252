"""An on-disk cache of rater mask stacks: one compressed file per (image, raters, size, source).

An entry's key hashes everything its value depends on: the image stem, the rater list, the
characteristic list, the size, the mask source, and the size and modification time of every source
file (annotation JSON or mask PNG). Editing a source file therefore invalidates its entries. A stack is
stored bit-packed (``numpy.packbits``) and zlib-compressed after a one-line text header holding its
shape; a bare format reads about twice as fast as an ``.npz`` archive.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from dermx.atomic import write_bytes

CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``$DERMX_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/dermx`` or ``~/.cache/dermx``."""
    if env := os.environ.get("DERMX_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dermx"


def cache_key(parts: Iterable[object], sources: Iterable[Path]) -> str:
    """A hex digest of ``parts`` and each source file's path, size and mtime (missing files too)."""
    digest = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for part in parts:
        digest.update(repr(part).encode())
    for path in sources:
        try:
            stat = path.stat()
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        except FileNotFoundError:
            digest.update(f"{path}|missing".encode())
    return digest.hexdigest()[:32]


class MaskCache:
    """Bit-packed bool arrays on disk, computed on a miss by the caller's function."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        path = self.directory / key[:2] / f"{key}.bits"
        if path.is_file():
            try:
                header, _, payload = path.read_bytes().partition(b"\n")
                shape = tuple(int(s) for s in header.split(b",") if s)
                bits = np.frombuffer(zlib.decompress(payload), dtype=np.uint8)
                value = np.unpackbits(bits, count=int(np.prod(shape))).view(bool).reshape(shape)
                self.hits += 1
                return value
            except (OSError, ValueError, zlib.error):
                path.unlink(missing_ok=True)  # a torn or foreign file: recompute and overwrite
        self.misses += 1
        value = compute()
        header = ",".join(str(s) for s in value.shape).encode() + b"\n"
        payload = zlib.compress(np.packbits(value.reshape(-1)).tobytes(), 1)
        write_bytes(path, header + payload)  # atomic: readers never see a half-written entry
        return value
