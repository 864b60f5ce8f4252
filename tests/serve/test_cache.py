"""The prediction cache: entry and byte bounds (least recently used dropped first), expiry after last use."""

from __future__ import annotations

import pytest

from dermx.serve.cache import PredictionCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_least_recently_used_goes_first_past_either_bound() -> None:
    cache: PredictionCache[str] = PredictionCache(3, 100, ttl=60, clock=Clock())
    a, b, c = (cache.add(v, 30) for v in "abc")
    assert len({a, b, c}) == 3 and all(len(k) == 32 and int(k, 16) >= 0 for k in (a, b, c))  # 128 random bits
    assert cache.get(a) == "a"  # a is now the most recently used: b goes first
    d = cache.add("d", 10)  # 4 entries > 3
    assert cache.get(b) is None and [cache.get(k) for k in (a, c, d)] == ["a", "c", "d"]
    assert len(cache) == 3 and cache.nbytes == 70 and cache.evicted == 1
    e = cache.add("e", 70)  # a goes (3 entries), then c (40 + 70 bytes > 100), in the order of last use
    assert [cache.get(k) for k in (a, c, d, e)] == [None, None, "d", "e"]
    assert cache.nbytes == 80 and cache.evicted == 3
    with pytest.raises(ValueError, match="an entry of 101 bytes does not fit a cache of 100 bytes"):
        cache.add("f", 101)
    assert cache.nbytes == 80  # a refused entry evicts nothing


def test_an_entry_expires_ttl_seconds_after_its_last_use() -> None:
    clock = Clock()
    cache: PredictionCache[str] = PredictionCache(10, 100, ttl=60, clock=clock)
    a, b = cache.add("a", 10), cache.add("b", 20)
    clock.now += 59
    assert cache.get(a) == "a"  # used: a lives 60 s from now
    clock.now += 2  # b unused for 61 s
    assert cache.get(b) is None and cache.get(a) == "a"
    assert cache.expired == 1 and cache.nbytes == 10
    clock.now += 60
    assert len(cache) == 0 and cache.nbytes == 0 and cache.expired == 2
    assert cache.get("not-an-id") is None


@pytest.mark.parametrize(("entries", "size", "ttl"), [(0, 10, 1.0), (1, 0, 1.0), (1, 10, 0.0)])
def test_bounds_must_be_positive(entries: int, size: int, ttl: float) -> None:
    with pytest.raises(ValueError, match="above 0"):
        PredictionCache(entries, size, ttl)
