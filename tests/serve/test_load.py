"""The real server (``dermx serve`` in a subprocess on 127.0.0.1) under load: memory bound and errors.

Bounded for CI: one server with its default limits, a tiny random checkpoint, 8 large uploads and
200 small ones (well under a minute on two busy cores). ``benchmarks/serve_load.py`` is the long
version.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

from dermx.models import build_model, save_checkpoint
from dermx.serve.loadtest import ServerProcess, multipart, run_load, service_device
from predict.samples import encoded, photo

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads memory from /proc")]

#: Peak memory 8 parallel 25-megapixel PNG uploads may add to the idle server's: 2 decodes at once of
#: about 100 MB each, plus rendering (measured: about 310 MB; before the bound: 1.7 GB).
LARGE_UPLOADS_MB = 600
#: Resident memory the second half of the 200 requests may add to the first half's.
DRIFT_MB = 60


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    torch.manual_seed(0)
    checkpoint = save_checkpoint(build_model("tiny", pretrained=False), tmp_path_factory.mktemp("tiny") / "ckpt")
    with ServerProcess(checkpoint) as process:
        yield process


def _large_png(side: int = 5000) -> bytes:
    """A ``side``² RGB PNG of a few hundred kB: 25 megapixels at the default side, the default limit."""
    ramp = np.linspace(0, 255, side, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.repeat(np.broadcast_to(ramp[:, None, None], (side, side, 1)), 3, axis=2)).save(buffer, "PNG")
    return buffer.getvalue()


def test_parallel_large_uploads_stay_within_the_memory_bound(server: ServerProcess) -> None:
    small, small_type = multipart(encoded(photo(), "JPEG"), "small.jpg", "image/jpeg")
    assert run_load(server.port, small, small_type, clients=2, requests=4).statuses == {200: 4}
    idle = server.rss_mb()
    body, content_type = multipart(_large_png(), "large.png", "image/png")
    result = run_load(server.port, body, content_type, clients=8, requests=8, time_limit=120)
    assert result.statuses == {200: 8}, result.unexpected
    peak = server.peak_rss_mb()
    assert peak - idle < LARGE_UPLOADS_MB, f"idle {idle:.0f} MB, peak {peak:.0f} MB"


def test_two_hundred_requests_no_server_errors_and_flat_memory(server: ServerProcess) -> None:
    body, content_type = multipart(encoded(photo(320, 240, seed=9), "JPEG", quality=90), "lesion.jpg", "image/jpeg")
    first = run_load(server.port, body, content_type, clients=20, requests=100, time_limit=60)
    after_first = server.rss_mb()
    second = run_load(server.port, body, content_type, clients=20, requests=100, time_limit=60)
    after_second = server.rss_mb()
    for result in (first, second):
        assert result.unexpected == [], result.unexpected[:3]  # only 200s and documented 503s
        assert set(result.statuses) <= {200, 503} and result.statuses[200] > 0
    assert first.answered + second.answered == 200
    drift = after_second - after_first
    assert drift < DRIFT_MB, f"{after_first:.0f} MB after 100 requests, {after_second:.0f} MB after 200"
    print(f"\nload: {first.summary()} / {second.summary()}; RSS {after_first:.0f} -> {after_second:.0f} MB")


def test_server_log_has_no_tracebacks(server: ServerProcess) -> None:
    assert not [line for line in server.log if "Traceback" in line], "\n".join(server.log)


def test_throughput_rows_are_labelled_with_the_device(server: ServerProcess) -> None:
    from dermx.compute import Compute
    from dermx.serve.batching import micro_batch

    max_batch, max_wait = micro_batch(Compute().check().type)
    assert service_device(server.port) == (f"{Compute().check()} 32, batches of {max_batch} within "
                                           f"{max_wait * 1000:g} ms")
