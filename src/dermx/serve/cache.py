"""The service's memory of recent predictions: what an intervention recomputes from, under an id.

:class:`PredictionCache` keeps values under random ids (128 bits: an id cannot be guessed, so one
client cannot reach another's image), bounded three ways:

- at most ``max_entries`` entries and ``max_bytes`` bytes (each entry's size is given when it is added):
  adding past either bound evicts the least recently used entries first;
- an entry expires ``ttl`` seconds after it was last used (added or read): a page left open keeps its
  image while the clinician works on it, an abandoned one is dropped.

An id that was never given, expired or was evicted reads as ``None`` (the service answers 404). Every
method takes the one lock: the cache may be used from the event loop and from worker threads alike.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

Value = TypeVar("Value")

#: Predictions kept by default (``dermx serve --n-cached``).
DEFAULT_N_CACHED = 512
#: MB they may take by default (``--cache-mb``): with CAM-layer activations of 64 KB (the ``tiny`` preset),
#: 2,000 predictions; of a ResNet-18 at 128 px, 32 KB.
DEFAULT_CACHE_MB = 128.0
#: Seconds a kept prediction lives after its last use by default (``--cache-ttl``).
DEFAULT_CACHE_TTL = 900.0


@dataclass
class _Entry(Generic[Value]):
    value: Value
    nbytes: int
    used: float


class PredictionCache(Generic[Value]):
    """Values under random ids, at most ``max_entries`` and ``max_bytes``, each expiring ``ttl`` seconds
    after its last use (module docstring); ``clock`` gives the time in seconds (monotonic)."""

    def __init__(self, max_entries: int, max_bytes: int, ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1 or max_bytes < 1 or not ttl > 0:
            raise ValueError(f"a cache needs max_entries, max_bytes and ttl above 0, got {max_entries}, "
                             f"{max_bytes} and {ttl}")
        self.max_entries, self.max_bytes, self.ttl = max_entries, max_bytes, ttl
        #: The time in seconds (monotonic); replaceable, e.g. by a test's clock.
        self.clock = clock
        self._entries: OrderedDict[str, _Entry[Value]] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()
        self._bytes = 0
        #: Entries dropped so far: evicted to keep within the bounds, expired.
        self.evicted = self.expired = 0

    def __len__(self) -> int:
        with self._lock:
            self._expire(self.clock())
            return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Bytes of the entries held (as given to :meth:`add`)."""
        with self._lock:
            self._expire(self.clock())
            return self._bytes

    def add(self, value: Value, nbytes: int) -> str:
        """Keep ``value`` (``nbytes`` its size) and return its new id, evicting the least recently used
        entries to stay within the bounds; ValueError when ``nbytes`` alone is over ``max_bytes``."""
        if nbytes > self.max_bytes:
            raise ValueError(f"an entry of {nbytes} bytes does not fit a cache of {self.max_bytes} bytes")
        key = secrets.token_hex(16)
        with self._lock:
            now = self.clock()
            self._expire(now)
            while self._entries and (len(self._entries) >= self.max_entries or self._bytes + nbytes > self.max_bytes):
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped.nbytes
                self.evicted += 1
            self._entries[key] = _Entry(value, nbytes, now)
            self._bytes += nbytes
        return key

    def get(self, key: str) -> Value | None:
        """The value under ``key`` (its expiry starts again), or ``None``: never given, expired or evicted."""
        with self._lock:
            now = self.clock()
            self._expire(now)
            entry = self._entries.get(key)
            if entry is None:
                return None
            entry.used = now
            self._entries.move_to_end(key)
            return entry.value

    def _expire(self, now: float) -> None:
        """Drop the entries unused for ``ttl`` seconds: the least recently used come first."""
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if now - entry.used < self.ttl:
                return
            del self._entries[key]
            self._bytes -= entry.nbytes
            self.expired += 1
