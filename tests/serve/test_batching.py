"""The micro-batcher: batching, ordering, errors, a bounded queue."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dermx.compute import Compute
from dermx.serve import Batcher, QueueFullError, create_app
from dermx.serve.batching import micro_batch


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


@pytest.mark.parametrize(("device", "expected"), [("cpu", (8, 0.005)), ("cuda", (32, 0.01)), ("mps", (32, 0.01))])
def test_the_batch_size_and_wait_follow_the_device(device: str, expected: tuple[int, float]) -> None:
    """The rule of :mod:`dermx.serve.batching`: a CPU pass costs the same per image at any batch size (short
    batches, short waits), a GPU pass of 32 little more than one (longer batches, longer waits); the values
    given win."""
    assert micro_batch(device) == pytest.approx(expected)
    assert micro_batch(device, 3, 20) == pytest.approx((3, 0.02))


def test_the_service_batches_by_its_device_and_says_so(checkpoint: Path) -> None:
    app = create_app(checkpoint)
    with TestClient(app) as client:
        info = client.get("/v1/model").json()
    device = Compute().check()
    expected = micro_batch(device.type)
    assert info["device"].split(":")[0] == device.type and info["precision"] == "32"
    assert (info["max_batch"], info["max_wait_ms"] / 1000) == pytest.approx(expected)
    assert (app.state.batcher.max_batch, app.state.batcher.max_wait) == pytest.approx(expected)
