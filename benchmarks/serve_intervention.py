"""Latency of an intervention on a kept prediction beside a full prediction, through the real server.

``dermx serve`` runs in its own process on 127.0.0.1 (default options, then ``--no-cache-maps``). One
client on one keep-alive connection uploads an image to ``POST /v1/predict`` ``--predictions`` times
(the full pass: decode, backbone, heads, maps, rendering), then sends ``--interventions`` requests to
``POST /v1/predictions/{id}/intervene`` for that image, each setting another characteristic present or
absent in turn (the heads from the kept pass, and the maps from the kept CAM-layer activations). Printed:
p50 / p95 / mean latency of each, their ratio, and whether the intervention's p95 is within the goal
(20 ms, issue 28). Requests are sequential: this is latency on an idle server, not throughput.

    python benchmarks/serve_intervention.py [--model CHECKPOINT] [--predictions 100] [--interventions 300]
        [--image 640x480] [--json out.json]

Without ``--model``, a randomly initialised ``tiny`` checkpoint (the demo's preset) with an intervention
rule fitted on its own characteristic logits of 64 random images is used: the same cost per pass as a
trained one. A ``--model`` must take interventions (a checkpoint of ``dermx train`` with characteristics).
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from dermx.models import build_model, save_checkpoint
from dermx.models.intervention import fit_intervention_rule
from dermx.serve.loadtest import LOOPBACK, LoadResult, ServerProcess, multipart, sample_jpeg

GOAL_P95_S = 0.020


def _tiny_checkpoint(folder: Path) -> Path:
    """A random ``tiny`` model whose intervention rule comes from its own logits on 64 random images."""
    torch.manual_seed(0)
    model = build_model("tiny", pretrained=False).eval()
    with torch.no_grad():
        logits = model(torch.randn(64, 3, *model.config.input_size))["characteristic"]
    model.config.interventions = fit_intervention_rule(logits, model.config.characteristics).to_dict()
    return save_checkpoint(model, folder / "tiny")


def _request(connection: http.client.HTTPConnection, path: str, body: bytes,
             content_type: str) -> tuple[float, int, bytes]:
    """(seconds, status, answer) of one POST on ``connection``."""
    start = time.perf_counter()
    connection.request("POST", path, body=body, headers={"Content-Type": content_type, "Connection": "keep-alive"})
    response = connection.getresponse()
    answer = response.read()
    return time.perf_counter() - start, response.status, answer


def _summary(latencies: list[float]) -> dict[str, float]:
    timed = LoadResult(1, latencies=latencies)
    return {"n": len(latencies), "p50_ms": round(1000 * timed.percentile(0.5), 2),
            "p95_ms": round(1000 * timed.percentile(0.95), 2),
            "mean_ms": round(1000 * sum(latencies) / len(latencies), 2)}


def measure(checkpoint: Path, upload: tuple[bytes, str], predictions: int, interventions: int,
            *extra: str) -> dict[str, Any]:
    """Latencies of ``predictions`` uploads and ``interventions`` interventions on one server."""
    with ServerProcess(checkpoint, *extra) as server:
        connection = http.client.HTTPConnection(LOOPBACK, server.port, timeout=120)
        try:
            connection.request("GET", "/v1/model")
            info = json.loads(connection.getresponse().read())
            names = info["interventions"]["characteristics"] if info["interventions"] else []
            if not names:
                raise SystemExit(f"{checkpoint}: this model takes no interventions ({info['intervention_note']})")
            predicted: list[float] = []
            key = ""
            for index in range(predictions + 5):  # 5 warm-up requests
                seconds, status, answer = _request(connection, "/v1/predict", *upload)
                if status != 200:
                    raise SystemExit(f"/v1/predict answered {status}: {answer[:300]!r}")
                if index >= 5:
                    predicted.append(seconds)
                key = json.loads(answer)["id"]
            intervened: list[float] = []
            maps: set[bool] = set()
            for index in range(interventions + 20):  # 20 warm-up requests
                name = names[index % len(names)]
                setting = {name: "present" if (index // len(names)) % 2 == 0 else "absent"}
                body = json.dumps({"set": setting}).encode()
                seconds, status, answer = _request(connection, f"/v1/predictions/{key}/intervene", body,
                                                   "application/json")
                if status != 200:
                    raise SystemExit(f"intervene answered {status}: {answer[:300]!r}")
                if index >= 20:
                    intervened.append(seconds)
                    maps.add(bool(json.loads(answer)["overlays"]))
            rss = server.rss_mb()
        finally:
            connection.close()
    predict, intervene = _summary(predicted), _summary(intervened)
    return {"options": list(extra), "predict": predict, "intervene": intervene, "maps": sorted(maps),
            "ratio_p50": round(predict["p50_ms"] / intervene["p50_ms"], 1),
            "ratio_p95": round(predict["p95_ms"] / intervene["p95_ms"], 1), "rss_mb": round(rss)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="checkpoint folder (default: random tiny checkpoint with a rule)")
    parser.add_argument("--predictions", type=int, default=100, help="timed uploads to /v1/predict")
    parser.add_argument("--interventions", type=int, default=300, help="timed interventions (at least 200)")
    parser.add_argument("--image", default="640x480", help="upload size WIDTHxHEIGHT (JPEG)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.interventions < 200 or args.predictions < 1:
        parser.error("give at least 200 interventions and one prediction")
    width, height = (int(v) for v in args.image.lower().split("x"))
    upload = multipart(sample_jpeg(width, height), "lesion.jpg", "image/jpeg")
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {width}x{height} JPEG; sequential requests, one keep-alive connection")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = args.model or _tiny_checkpoint(Path(folder))
        print(f"model {args.model or 'random tiny (64 px, 8x8 maps) with a fitted rule'}")
        print(f"{'service':<18} {'request':<10} {'n':>4} {'p50 ms':>7} {'p95 ms':>7} {'mean ms':>7}")
        for extra in ((), ("--no-cache-maps",)):
            row = measure(checkpoint, upload, args.predictions, args.interventions, *extra)
            rows.append(row)
            label = " ".join(extra) or "default"
            for request in ("predict", "intervene"):
                timing = row[request]
                print(f"{label:<18} {request:<10} {timing['n']:>4} {timing['p50_ms']:>7.2f} {timing['p95_ms']:>7.2f} "
                      f"{timing['mean_ms']:>7.2f}")
            within = "within" if row["intervene"]["p95_ms"] <= 1000 * GOAL_P95_S else "OVER"
            print(f"{label:<18} predict / intervene: {row['ratio_p50']}x at p50, {row['ratio_p95']}x at p95; "
                  f"intervention maps: {row['maps']}; p95 {within} the {1000 * GOAL_P95_S:g} ms goal; "
                  f"server RSS {row['rss_mb']} MB")
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "image": [width, height], "runs": rows},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
