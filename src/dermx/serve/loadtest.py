"""Load testing the service on loopback: the server in a subprocess, concurrent clients, memory readings.

:class:`ServerProcess` runs ``dermx serve`` in its own process on 127.0.0.1 with an ephemeral port
and reads its resident memory (current and peak) from ``/proc``; :func:`run_load` sends a bounded
number of ``POST /v1/predict`` uploads from concurrent clients (one thread and one keep-alive
connection each) and collects statuses, latencies and every answer that is not a success or a
documented 503. Only the standard library is used, and only loopback is ever contacted. The CI load
test (``tests/serve/test_load.py``) and ``benchmarks/serve_load.py`` are built on these; their rows of
requests per second are labelled with the device the service runs on (:func:`service_device`).
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from PIL import Image

from dermx.explain.overlay import encode

LOOPBACK = "127.0.0.1"
_STARTED = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def proc_memory_mb(pid: int, key: str = "VmRSS") -> float:
    """A memory figure of process ``pid`` from ``/proc/<pid>/status`` in MB: ``VmRSS`` (resident now) or
    ``VmHWM`` (peak resident). Raises ``OSError`` where ``/proc`` is not available."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024  # kB
    raise OSError(f"no {key} in /proc/{pid}/status")


class ServerProcess:
    """``dermx serve --model CHECKPOINT`` in a subprocess on 127.0.0.1, on a port the system picks.

    Use as a context manager; ``extra`` are more ``dermx serve`` options. The server's log is kept
    (its last lines are in :attr:`log`, and in the error raised if it does not start in ``timeout``).
    """

    def __init__(self, checkpoint: str | Path, *extra: str, timeout: float = 180.0) -> None:
        self.command = [sys.executable, "-m", "dermx", "serve", "--model", str(checkpoint), "--host", LOOPBACK,
                        "--port", "0", *extra]
        self.timeout = timeout
        self.port = 0
        self.log: deque[str] = deque(maxlen=200)
        self._process: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        """The server's process id."""
        if self._process is None:
            raise RuntimeError("the server is not running")
        return self._process.pid

    def rss_mb(self) -> float:
        """Resident memory of the server now, in MB."""
        return proc_memory_mb(self.pid, "VmRSS")

    def peak_rss_mb(self) -> float:
        """Peak resident memory of the server since it started, in MB."""
        return proc_memory_mb(self.pid, "VmHWM")

    def start(self) -> ServerProcess:
        """Start the server and wait until it listens; ``RuntimeError`` with its log otherwise."""
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        self._process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         text=True, env=env)
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._drain, args=(lines,), daemon=True).start()
        deadline = time.monotonic() + self.timeout
        while not self.port:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                self.stop()
                raise RuntimeError("dermx serve did not start:\n" + "\n".join(self.log))
            if found := _STARTED.search(line):
                self.port = int(found.group(1))
        return self

    def _drain(self, lines: queue.Queue[str | None]) -> None:
        assert self._process is not None and self._process.stderr is not None
        for line in self._process.stderr:
            self.log.append(line.rstrip())
            if not self.port:
                lines.put(line)
        lines.put(None)

    def stop(self) -> None:
        """Stop the server (terminate, then kill after 15 s)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


def sample_jpeg(width: int, height: int, seed: int = 0) -> bytes:
    """A JPEG of smooth colour with noise, like a small clinical photograph."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([120 + 60 * np.sin(x / 37), 90 + 50 * np.cos(y / 23), 100 + 0 * x], axis=-1)
    pixels += rng.normal(0, 12, pixels.shape)
    return encode(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB"), "JPEG")


def multipart(data: bytes, name: str, mime: str, field_name: str = "file") -> tuple[bytes, str]:
    """``(body, content type)`` of a ``multipart/form-data`` upload of one file."""
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; filename="{name}"\r\n'
            f"Content-Type: {mime}\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@dataclass
class LoadResult:
    """What one load run saw: statuses, latencies of the answered requests (s), wall time (s), and
    every answer that was neither a 200 nor a documented 503 ``{"error": ...}`` (status, body start)."""

    clients: int
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    unexpected: list[tuple[int, str]] = field(default_factory=list)

    @property
    def answered(self) -> int:
        """Requests that got an HTTP answer."""
        return sum(n for status, n in self.statuses.items() if status > 0)

    @property
    def requests_per_s(self) -> float:
        """Successful (200) requests per second of wall time."""
        return self.statuses[200] / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """The ``q`` quantile (0–1) of the successful requests' latencies, in seconds (nearest rank)."""
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {"clients": self.clients, "seconds": round(self.seconds, 3),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "requests_per_s": round(self.requests_per_s, 2), "p50_s": round(self.percentile(0.5), 3),
                "p95_s": round(self.percentile(0.95), 3), "unexpected": len(self.unexpected)}


def _documented_busy(body: bytes) -> bool:
    try:
        document = json.loads(body)
    except ValueError:
        return False
    return isinstance(document, dict) and set(document) == {"error"} and "busy" in str(document["error"])


def service_device(port: int, timeout: float = 30.0) -> str:
    """``device, precision, max_batch, max_wait_ms`` of the service on 127.0.0.1:``port`` (``GET /v1/model``),
    the label of its throughput rows, e.g. ``cuda:0 bf16-mixed, batches of 32 within 10 ms``."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        connection.request("GET", "/v1/model")
        info = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    return (f"{info['device']} {info['precision']}, batches of {info['max_batch']} within "
            f"{info['max_wait_ms']:g} ms")


def run_load(port: int, body: bytes, content_type: str, *, clients: int, requests: int,
             time_limit: float = 60.0, timeout: float = 120.0) -> LoadResult:
    """Send ``requests`` uploads of ``body`` to ``POST /v1/predict`` on 127.0.0.1:``port`` from
    ``clients`` concurrent clients; clients stop taking new requests after ``time_limit`` seconds.

    A connection error counts as status 0 (and is in ``unexpected``); the client then reconnects.
    """
    result = LoadResult(clients)
    tickets = iter(range(requests))
    lock = threading.Lock()
    deadline = time.monotonic() + time_limit
    headers = {"Content-Type": content_type, "Connection": "keep-alive"}

    def client() -> None:
        connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
        try:
            while time.monotonic() < deadline:
                with lock:
                    if next(tickets, None) is None:
                        return
                start = time.perf_counter()
                try:
                    connection.request("POST", "/v1/predict", body=body, headers=headers)
                    response = connection.getresponse()
                    answer = response.read()
                    status = response.status
                except (OSError, http.client.HTTPException) as error:
                    connection.close()
                    status, answer = 0, repr(error).encode()
                elapsed = time.perf_counter() - start
                with lock:
                    result.statuses[status] += 1
                    if status == 200:
                        result.latencies.append(elapsed)
                    elif not (status == 503 and _documented_busy(answer)):
                        result.unexpected.append((status, answer[:300].decode("utf-8", "replace")))
        finally:
            connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - start
    return result
