"""Prediction latency and service throughput on CPU.

Per image, for each preset (random weights): the model's forward pass alone (``torch.no_grad``) vs
:meth:`dermx.predict.Predictor.run` (the same batch with probabilities and every explanation map),
and preprocessing alone. Then the web service on 127.0.0.1 (uvicorn in a thread) under concurrent
clients: requests per second over a bounded number of requests.

    python benchmarks/predict_latency.py [--presets small resnet50] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch
import uvicorn
from PIL import Image

from dermx.models import build_model, save_checkpoint
from dermx.predict import Predictor
from dermx.serve import create_app


def _image(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def _median_seconds(step: Callable[[], object], repeats: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def latency(preset: str, batch: int, repeats: int) -> dict[str, Any]:
    torch.manual_seed(0)
    predictor = Predictor(build_model(preset, pretrained=False), batch_size=batch)
    prepared = [predictor.prepare(_image(i)) for i in range(batch)]
    tensors = torch.stack([p.tensor for p in prepared])

    def forward() -> object:
        with torch.no_grad():
            return predictor.model(tensors)

    forward_s = _median_seconds(forward, repeats) / batch
    predict_s = _median_seconds(lambda: predictor.run(prepared), repeats) / batch
    prepare_s = _median_seconds(lambda: [predictor.prepare(_image(i)) for i in range(batch)], repeats) / batch
    return {"preset": preset, "input_size": list(predictor.model.config.input_size), "batch": batch,
            "forward_ms": forward_s * 1e3, "predict_ms": predict_s * 1e3, "preprocess_ms": prepare_s * 1e3,
            "overhead": predict_s / forward_s - 1}


def throughput(preset: str, clients: int, requests: int, time_limit: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = save_checkpoint(build_model(preset, pretrained=False), Path(folder) / "ckpt")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(create_app(checkpoint), host="127.0.0.1", port=port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        buffer = io.BytesIO()
        _image(0).save(buffer, format="JPEG", quality=90)
        payload = buffer.getvalue()
        url = f"http://127.0.0.1:{port}/v1/predict"
        deadline = time.monotonic() + time_limit
        tickets = iter(range(requests))  # next() on a shared iterator is atomic under the GIL
        done: list[int] = []

        def client(_: int) -> None:
            with httpx.Client(timeout=120) as http:
                while time.monotonic() < deadline and next(tickets, None) is not None:
                    response = http.post(url, files={"file": ("bench.jpg", payload, "image/jpeg")})
                    response.raise_for_status()
                    done.append(1)

        httpx.post(url, files={"file": ("bench.jpg", payload, "image/jpeg")}, timeout=120).raise_for_status()
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(client, range(clients)))
        elapsed = time.perf_counter() - start
        server.should_exit = True
        thread.join(10)
    return {"preset": preset, "clients": clients, "requests": len(done), "seconds": elapsed,
            "requests_per_s": len(done) / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["small", "resnet50"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=80, help="requests per service run (upper bound)")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per service run (upper bound)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [latency(p, args.batch, args.repeats) for p in args.presets]
    print(f"CPU, {args.threads} threads, batch {args.batch}, 640x480 images, median of {args.repeats}")
    print(f"{'preset':<10} {'input':>9} {'forward ms/img':>15} {'predict ms/img':>15} {'overhead':>9} "
          f"{'preprocess ms/img':>18}")
    for r in rows:
        size = "x".join(map(str, r["input_size"]))
        print(f"{r['preset']:<10} {size:>9} {r['forward_ms']:>15.1f} {r['predict_ms']:>15.1f} "
              f"{r['overhead']:>8.1%} {r['preprocess_ms']:>18.1f}")
    service = [throughput(p, args.clients, args.requests, args.time_limit) for p in args.presets]
    print(f"\nservice on 127.0.0.1, {args.clients} concurrent clients, 640x480 JPEG uploads")
    print(f"{'preset':<10} {'requests':>9} {'seconds':>8} {'req/s':>7}")
    for s in service:
        print(f"{s['preset']:<10} {s['requests']:>9} {s['seconds']:>8.1f} {s['requests_per_s']:>7.2f}")
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "latency": rows, "service": service}, indent=2))


if __name__ == "__main__":
    main()
