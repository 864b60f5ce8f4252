"""Service throughput, latency and memory under concurrent clients, on loopback.

``dermx serve`` runs in its own process on 127.0.0.1 (default limits); for each client count, every
client keeps one connection and posts the same image to ``POST /v1/predict`` until the request budget
is spent. Reported: successful requests per second, p50 / p95 latency of the successful requests,
every status seen (only 200 and the documented 503 "server busy" are expected), and the server's
resident memory (now and peak, from ``/proc``). ``--soak N`` then sends N more requests in ten
slices and prints the memory after each, to show it stays flat.

    python benchmarks/serve_load.py --model runs/demo-<time>/models/dermx/model [--clients 20 50 300]
        [--requests 600] [--soak 1000] [--image 640x480] [--device cuda --precision bf16-mixed] [--json out.json]

Every row is labelled with the device the service runs on, its precision and its micro-batching (from
``GET /v1/model``), so rows of several devices can be compared.

Without ``--model``, a randomly initialised ``tiny`` checkpoint is used: same cost per forward pass,
but random weights mark about half the characteristics present, so more overlays are drawn.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from dermx.models import build_model, save_checkpoint
from dermx.serve.loadtest import ServerProcess, multipart, run_load, sample_jpeg, service_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="checkpoint folder (default: random tiny checkpoint)")
    parser.add_argument("--clients", type=int, nargs="+", default=[20, 50, 300])
    parser.add_argument("--requests", type=int, default=600, help="requests per client count")
    parser.add_argument("--soak", type=int, default=1000, help="requests of the memory soak (0: none)")
    parser.add_argument("--image", default="640x480", help="upload size WIDTHxHEIGHT (JPEG)")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds per run (upper bound)")
    parser.add_argument("--device", default="auto", help="dermx serve --device (auto, cpu, cuda, cuda:N, mps)")
    parser.add_argument("--precision", default="32", help="dermx serve --precision (32, bf16-mixed, 16-mixed)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    width, height = (int(v) for v in args.image.lower().split("x"))
    body, content_type = multipart(sample_jpeg(width, height), "lesion.jpg", "image/jpeg")
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = args.model
        if checkpoint is None:
            torch.manual_seed(0)
            checkpoint = save_checkpoint(build_model("tiny", pretrained=False), Path(folder) / "tiny")
        with ServerProcess(checkpoint, "--device", args.device, "--precision", args.precision) as server:
            run_load(server.port, body, content_type, clients=2, requests=10)  # warm-up
            idle = server.rss_mb()
            device = service_device(server.port)
            print(f"model {args.model or 'random tiny'}, {width}x{height} JPEG uploads, idle RSS {idle:.0f} MB")
            print(f"device: {device}")
            print(f"{'clients':>7} {'requests':>8} {'req/s':>6} {'p50 s':>6} {'p95 s':>6} {'statuses':<22} "
                  f"{'other':>5} {'RSS MB':>7} {'peak MB':>7}")
            rows: list[dict[str, Any]] = []
            for clients in args.clients:
                result = run_load(server.port, body, content_type, clients=clients, requests=args.requests,
                                  time_limit=args.time_limit)
                row = {"device": device, **result.summary(), "rss_mb": round(server.rss_mb()),
                       "peak_mb": round(server.peak_rss_mb())}
                rows.append(row)
                statuses = ", ".join(f"{k}: {v}" for k, v in row["statuses"].items())
                print(f"{clients:>7} {result.answered:>8} {row['requests_per_s']:>6.1f} {row['p50_s']:>6.2f} "
                      f"{row['p95_s']:>6.2f} {statuses:<22} {row['unexpected']:>5} {row['rss_mb']:>7} "
                      f"{row['peak_mb']:>7}")
                for status, text in result.unexpected[:3]:
                    print(f"        unexpected {status}: {text}")
            soak: list[float] = []
            other = 0
            for _ in range(10 if args.soak else 0):
                other += len(run_load(server.port, body, content_type, clients=20, requests=args.soak // 10,
                                      time_limit=args.time_limit).unexpected)
                soak.append(round(server.rss_mb()))
            if soak:
                print(f"soak, {args.soak} requests at 20 clients, RSS after each tenth (MB): {soak}; "
                      f"answers other than 200 and documented 503: {other}")
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "device": device, "image": [width, height],
                                         "idle_mb": idle,
                                         "runs": rows, "soak_mb": soak,
                                         "soak_other": other}, indent=2) + "\n")


if __name__ == "__main__":
    main()
