"""Micro-batching: requests from any thread or event loop share one worker thread and one model.

:meth:`Batcher.submit` queues an item and returns a future; the worker takes the first waiting item,
waits up to ``max_wait`` seconds for more (up to ``max_batch``), runs them as one batch and resolves
each future with its own result, or with the batch's exception. A full queue refuses new items
(:class:`QueueFullError`) instead of growing without bound.

How large and how long (:func:`micro_batch`) depends on the device the model runs on: on the CPU a
pass costs about the same per image whatever the batch, so a batch buys little and the worker waits
briefly (8 images, 5 ms); on a GPU (CUDA, or Apple's MPS) a pass of 32 images costs little more than
a pass of one, so the worker collects more requests for longer (32 images, 10 ms: short next to the
upload's decoding and the response's rendering, which take tens of ms).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

#: ``device type → (max_batch, max_wait in ms)`` of :func:`micro_batch` (module docstring).
MICRO_BATCH: dict[str, tuple[int, float]] = {"cpu": (8, 5.0), "cuda": (32, 10.0), "mps": (32, 10.0)}

Item = TypeVar("Item")
Result = TypeVar("Result")


def micro_batch(device_type: str, max_batch: int | None = None, max_wait_ms: float | None = None
                ) -> tuple[int, float]:
    """``(max_batch, max_wait in seconds)`` of a :class:`Batcher` whose model runs on a ``device_type``
    (``cpu``, ``cuda``, ``mps``) device: the values given, else the device's (:data:`MICRO_BATCH`)."""
    batch, wait_ms = MICRO_BATCH.get(device_type, MICRO_BATCH["cuda"])
    return (batch if max_batch is None else max_batch), (wait_ms if max_wait_ms is None else max_wait_ms) / 1000


class QueueFullError(RuntimeError):
    """The batcher has ``max_queue`` items waiting already."""


class Batcher(Generic[Item, Result]):
    """Run ``process(items) -> results`` (same length, same order) on batches, in one worker thread."""

    def __init__(self, process: Callable[[Sequence[Item]], Sequence[Result]], *, max_batch: int = 8,
                 max_wait: float = 0.005, max_queue: int = 256) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait < 0:
            raise ValueError("max_batch and max_queue must be positive and max_wait non-negative")
        self.process = process
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._queue: queue.Queue[tuple[Item, Future[Result]] | None] = queue.Queue(max_queue)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: Batches and items run so far, and the largest batch (for monitoring and tests).
        self.batches = self.items = self.largest = 0

    @property
    def queued(self) -> int:
        """Items waiting for the worker."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="dermx-batcher", daemon=True)
                self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Finish the queued items, then stop the worker."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def submit(self, item: Item) -> Future[Result]:
        """Queue ``item``; the future resolves to its result. Raises :class:`QueueFullError`."""
        self.start()
        future: Future[Result] = Future()
        try:
            self._queue.put_nowait((item, future))
        except queue.Full:
            raise QueueFullError(f"{self._queue.maxsize} requests are waiting already") from None
        return future

    async def __call__(self, item: Item) -> Result:
        """Await the result of ``item`` from an event loop."""
        return await asyncio.wrap_future(self.submit(item))

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.max_wait
            stop = False
            while len(batch) < self.max_batch:
                try:
                    entry = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if entry is None:
                    stop = True
                    break
                batch.append(entry)
            self._run(batch)
            if stop:
                return

    def _run(self, batch: list[tuple[Item, Future[Result]]]) -> None:
        live = [(item, future) for item, future in batch if future.set_running_or_notify_cancel()]
        if not live:
            return
        self.batches += 1
        self.items += len(live)
        self.largest = max(self.largest, len(live))
        try:
            results = self.process([item for item, _ in live])
        except Exception as error:  # handed to every waiting caller
            for _, future in live:
                future.set_exception(error)
            return
        for (_, future), result in zip(live, results, strict=True):
            future.set_result(result)
