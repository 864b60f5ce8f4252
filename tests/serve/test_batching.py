"""The micro-batcher: batching, ordering, errors, a bounded queue."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from dermx.serve import Batcher, QueueFullError


def test_concurrent_items_are_batched_in_order() -> None:
    batcher: Batcher[int, int] = Batcher(lambda items: [i * 10 for i in items], max_batch=4, max_wait=0.05)
    futures = [batcher.submit(i) for i in range(10)]
    assert [f.result(timeout=5) for f in futures] == [i * 10 for i in range(10)]
    assert batcher.items == 10 and batcher.largest == 4 and batcher.batches >= 3
    batcher.close()


def test_errors_reach_every_caller_and_the_worker_survives() -> None:
    def process(items: Sequence[int]) -> list[int]:
        if 0 in items:
            raise RuntimeError("bad batch")
        return list(items)

    batcher: Batcher[int, int] = Batcher(process, max_batch=1)
    with pytest.raises(RuntimeError, match="bad batch"):
        batcher.submit(0).result(timeout=5)
    assert asyncio.run(batcher(7)) == 7
    batcher.close()


def test_full_queue_refuses() -> None:
    gate = threading.Event()
    batcher: Batcher[int, int] = Batcher(lambda items: gate.wait(5) and list(items), max_batch=1, max_queue=1)
    first = batcher.submit(1)
    while batcher.queued:  # the worker holds the first item, blocked on the gate
        threading.Event().wait(0.001)
    batcher.submit(2)
    with pytest.raises(QueueFullError):
        batcher.submit(3)
    gate.set()
    assert first.result(timeout=5) == 1
    batcher.close()
