"""The HTTP API: model information, predictions, refusals of bad input, concurrent requests."""

from __future__ import annotations

import base64
import hashlib
import io
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from dermx.models import build_model, save_checkpoint
from dermx.serve import create_app
from predict.samples import encoded, photo, png_declaring


def _post(client: TestClient, data: bytes, name: str = "image.jpg", mime: str = "image/jpeg") -> Any:
    return client.post("/v1/predict", files={"file": (name, data, mime)})


def _picture(url: str) -> Image.Image:
    header, payload = url.split(",", 1)
    assert header in ("data:image/png;base64", "data:image/jpeg;base64")
    image = Image.open(io.BytesIO(base64.b64decode(payload)))
    image.load()
    return image


@pytest.mark.slow
def test_health_model_and_schema(client: TestClient, checkpoint: Path) -> None:
    assert client.get("/health").json()["status"] == "ok"
    info = client.get("/v1/model").json()
    assert info["checkpoint"]["sha256"] == hashlib.sha256((checkpoint / "model.safetensors").read_bytes()).hexdigest()
    assert info["backbone"] == "resnet18" and len(info["diagnoses"]) == 6 and info["dermx_version"]
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/predict", "/v1/model", "/health"} <= set(paths)


def test_prediction_with_overlays(client: TestClient) -> None:
    response = _post(client, encoded(photo(96, 72), "JPEG"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["diagnosis"] == body["diagnoses"][0]["name"] and body["image_size"] == [72, 96]
    present = [c["name"] for c in body["characteristics"] if c["present"]]
    assert [o["target"] for o in body["overlays"]] == [f"diagnosis:{body['diagnosis']}"] + [
        f"characteristic:{n}" for n in present]
    # the 96x72 photo is padded into the square 64x64 input: the page shows the whole input at the photo's
    # scale (96x96, padding hatched) with the photo's area, and the maps cover the whole input
    assert body["input_area"] == {"box": [12, 0, 72, 96], "size": [96, 96]}
    shown = np.asarray(_picture(body["image"]).convert("L"), dtype=int)
    assert shown.shape == (96, 96) and len(np.unique(shown[:10] // 16)) >= 2  # hatched padding, not flat
    layer = _picture(body["overlays"][0]["png"])
    assert layer.mode == "RGBA" and layer.size == (96, 96)
    top = body["overlays"][0]
    assert top["probability"] == body["diagnoses"][0]["probability"]
    assert top["title"] == f"diagnosis: {body['diagnosis']} · p = {top['probability']:.2f} · Grad-CAM"
    assert _picture(body["colorbar"]).size == (256, 12)


def _truncated_jpeg() -> bytes:
    data = encoded(photo(200, 150), "JPEG")
    return data[: len(data) // 2]


@pytest.mark.parametrize(("data", "name", "status", "message"), [
    (b"", "empty.jpg", 400, "empty"),
    (b"just some words\n" * 20, "notes.txt", 415, "not a readable image"),
    (_truncated_jpeg(), "cut.jpg", 422, "truncated"),
    (png_declaring(8000, 8000), "large.png", 413, "64000000 pixels"),
    (png_declaring(100_000, 100_000), "bomb.png", 413, "too many pixels"),
    (encoded(photo(), "GIF"), "anim.gif", 415, "GIF images are not supported"),
])
def test_bad_uploads_are_clear_4xx(client: TestClient, data: bytes, name: str, status: int, message: str) -> None:
    response = _post(client, data, name)
    assert response.status_code == status, response.text
    assert message in response.json()["error"] and name in response.json()["error"]


def test_oversize_upload_and_missing_file(client: TestClient) -> None:
    big = _post(client, b"\xff\xd8" + bytes(2 * 1024 * 1024))  # limit is 1 MB in this app
    assert big.status_code == 413 and "exceeds" in big.json()["error"]
    assert client.post("/v1/predict").status_code == 422
    assert client.post("/v1/predict", content=b"x" * 3_000_000,
                       headers={"content-type": "application/octet-stream"}).status_code == 413


@pytest.mark.slow
def test_twenty_concurrent_requests_match_a_single_one(client: TestClient) -> None:
    data = encoded(photo(80, 80, seed=3), "PNG")
    single = _post(client, data, "same.png", "image/png").json()
    batcher = client.app.state.batcher  # type: ignore[attr-defined]
    before = (batcher.batches, batcher.items)
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda _: _post(client, data, "same.png", "image/png"), range(20)))
    assert all(r.status_code == 200 for r in responses)
    for body in (r.json() for r in responses):
        assert [d["name"] for d in body["diagnoses"]] == [d["name"] for d in single["diagnoses"]]
        for got, want in zip(body["diagnoses"] + body["characteristics"],
                             single["diagnoses"] + single["characteristics"], strict=True):
            assert got["probability"] == pytest.approx(want["probability"], abs=1e-5)
        assert [o["target"] for o in body["overlays"]] == [o["target"] for o in single["overlays"]]
    assert batcher.items - before[1] == 20 and batcher.batches - before[0] < 20  # some were batched


EXTERNAL = re.compile(r"""(?:https?:)?//(?!127\.0\.0\.1|localhost|testserver)[\w.-]+""", re.IGNORECASE)
LINKED = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def test_redoc_is_not_served(client: TestClient) -> None:
    assert client.get("/redoc").status_code == 404  # its page fetches a logo from a CDN


@pytest.mark.parametrize("path", ["/", "/docs", "/docs/oauth2-redirect"])
def test_no_served_html_references_an_external_host(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert EXTERNAL.findall(page.text) == []
    for link in LINKED.findall(page.text):  # every script, style sheet and icon is served here
        assert link.startswith("/"), link
        assert client.get(link).status_code == 200, link


def test_page_assets_are_local(client: TestClient) -> None:
    for asset in ("/static/app.js", "/static/style.css"):
        response = client.get(asset)
        assert response.status_code == 200
        assert "http://" not in response.text and "https://" not in response.text


def test_model_information_has_the_data_fingerprint_not_paths(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("tiny", pretrained=False)
    model.config.training_data = {"source": "/home/someone/clinic-data/dermxdb", "sha256": "0123456789abcdef",
                                  "n_train": 300, "n_val": 60, "n_test": 90, "fold": 2}
    with TestClient(create_app(save_checkpoint(model, tmp_path / "ckpt"))) as client:
        response = client.get("/v1/model")
    assert response.json()["training_data"] == {"sha256": "0123456789abcdef", "fold": 2, "n_train": 300,
                                                 "n_val": 60, "n_test": 90}
    assert "/home/someone" not in response.text and str(tmp_path) not in response.text


@pytest.mark.slow
def test_large_image_is_decoded_reduced_and_shown_at_display_size(client: TestClient) -> None:
    picture = photo(160, 120, seed=5).resize((3200, 2400), Image.Resampling.NEAREST)  # < 1 MB as PNG too
    for fmt in ("JPEG", "PNG"):
        response = _post(client, encoded(picture, fmt), f"big.{fmt.lower()}")
        assert response.status_code == 200, response.text
        body = response.json()
        height, width = body["image_size"]  # decoded at 1/k scale, shorter side still >= 1024
        assert 1024 <= height < 2048 and abs(width / height - 4 / 3) < 0.01
        shown = _picture(body["image"])
        assert max(shown.size) == 1024 and _picture(body["overlays"][0]["png"]).size == shown.size


def test_default_pixel_limit_refuses_a_36_megapixel_image(client: TestClient) -> None:
    response = _post(client, png_declaring(6000, 6000), "huge.png")  # 105 kB that would decode to 108 MB
    assert response.status_code == 413 and "limit of 25000000" in response.json()["error"]
