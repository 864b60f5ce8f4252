"""Interventions through the service: ``POST /v1/predictions/{id}/intervene`` on a kept prediction.

Known answer: the network of ``tests/predict/test_intervention.py`` whose diagnosis is ``W z_char + b``;
setting characteristics must give ``softmax(W z' + b)`` to float precision, from the kept pass alone (no
upload, no backbone pass). Then the cache's bounds and expiry, and every refusal."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from dermx.cli import app as cli
from dermx.predict import Predictor
from dermx.serve import ServiceOptionError, create_app
from predict.samples import calibrated_checkpoint, encoded, photo, photo_file, tiny_checkpoint, with_intervention_rule
from predict.test_intervention import SETTING, expected, linear_checkpoint
from serve.test_errors import _conforms
from serve.test_trust import TRUST_KEYS
from support import plain

ASKED = {"set": {"Scale": "present", "Pustule": "absent"}}  # SETTING, as the service takes it


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return linear_checkpoint(tmp_path_factory.mktemp("linear"))


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return photo_file(tmp_path_factory.mktemp("image"))


@pytest.fixture(scope="module")
def service(checkpoint: Path) -> Iterator[TestClient]:
    with TestClient(create_app(checkpoint, max_wait_ms=1, cache_ttl=60)) as client:
        yield client


def _predict(client: TestClient, data: bytes, **form: str) -> dict[str, Any]:
    response = client.post("/v1/predict", files={"file": ("lesion.png", data, "image/png")}, data=form)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _intervene(client: TestClient, key: str, body: Any = ASKED) -> Any:
    return client.post(f"/v1/predictions/{key}/intervene", json=body)


def _size(url: str) -> tuple[int, int]:
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as picture:
        return picture.size


def test_the_service_gives_the_formula_without_the_image(service: TestClient, checkpoint: Path, image: Path) -> None:
    before, after, classes = expected(checkpoint, image)
    first = _predict(service, image.read_bytes())
    assert [{d["name"]: d["probability"] for d in first["diagnoses"]}[c] for c in classes] == pytest.approx(
        before.tolist(), abs=1e-6)
    calls: list[int] = []
    hook = service.app.state.predictor.model.backbone.register_forward_hook(lambda *_: calls.append(1))
    try:
        response = _intervene(service, first["id"])
    finally:
        hook.remove()
    assert response.status_code == 200, response.text
    assert calls == []  # the heads alone, from the kept pass
    body = response.json()
    shown = {d["name"]: d["probability"] for d in body["diagnoses"]}
    assert [shown[c] for c in classes] == pytest.approx(after.tolist(), abs=1e-6)
    top = classes[int(np.argmax(after))]
    assert body["diagnosis"] == body["diagnoses"][0]["name"] == top and body["id"] == first["id"]
    record = body["intervention"]
    assert record["set"] == ASKED["set"] and set(record["logits"]) == {"Scale", "Pustule"}
    assert [{d["name"]: d["probability"] for d in record["before"]}[c] for c in classes] == pytest.approx(
        before.tolist(), abs=1e-6)
    assert [record["change"][c] for c in classes] == pytest.approx((after - before).tolist(), abs=1e-6)
    characteristics = {c["name"]: c["present"] for c in body["characteristics"]}
    assert characteristics["Scale"] and not characteristics["Pustule"]
    # the map of the new top diagnosis (the characteristics' are the prediction's), the shape of the picture
    # shown (the 96x72 photo padded to a square) at the model input's scale (64 px)
    (overlay,) = body["overlays"]
    assert overlay["target"] == f"diagnosis:{top}" and overlay["title"].startswith(f"diagnosis: {top} · p = ")
    assert body["maps_note"] is None and _size(first["image"]) == (96, 96) and _size(overlay["png"]) == (64, 64)
    # every control back to "model": the model's own answer
    again = _intervene(service, first["id"], {"set": {}}).json()
    assert [d["probability"] for d in again["diagnoses"]] == pytest.approx(
        [d["probability"] for d in first["diagnoses"]], abs=1e-6)
    assert set(again["intervention"]["change"].values()) == {0.0}
    schema = service.get("/openapi.json").json()
    operation = schema["paths"]["/v1/predictions/{prediction_id}/intervene"]["post"]
    assert {"200", "400", "404", "422", "503"} <= set(operation["responses"])
    documented = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert _conforms(body, documented, schema["components"]["schemas"]) == []
    info = service.get("/v1/model").json()
    assert info["interventions"]["characteristics"] == [c["name"] for c in first["characteristics"]]
    assert info["intervention_note"] == ""


def test_a_calibrated_intervention_keeps_the_image_s_skin_tone_and_risk(tmp_path: Path) -> None:
    checkpoint = with_intervention_rule(calibrated_checkpoint(tmp_path / "calibrated"))
    data = encoded(photo(seed=4), "PNG")
    with TestClient(create_app(checkpoint, max_wait_ms=1)) as client:
        for form in ({"skin_tone": "dark", "abstain_risk": "0"}, {"skin_tone": "light"}):
            body = _intervene(client, _predict(client, data, **form)["id"]).json()
            predictor = Predictor(checkpoint, skin_tone=form.get("skin_tone"),
                                  abstain_risk=float(form["abstain_risk"]) if "abstain_risk" in form else None)
            (want,) = [p.to_dict() for p in predictor.predict([data], set_characteristics=SETTING)]
            assert [d["probability"] for d in body["diagnoses"]] == pytest.approx(
                [d["probability"] for d in want["diagnoses"]], abs=1e-6)
            for key in ("diagnosis", *TRUST_KEYS):
                assert body[key] == (pytest.approx(want[key]) if isinstance(want[key], float) else want[key]), key
    assert body["calibrated"] and body["skin_tone"] == "light"


def test_the_cache_keeps_n_predictions_and_bytes_and_forgets_unused_ones(checkpoint: Path, image: Path) -> None:
    data = image.read_bytes()
    with TestClient(create_app(checkpoint, max_wait_ms=1, n_cached=2)) as client:
        keys = [_predict(client, data)["id"] for _ in range(3)]
        assert [_intervene(client, k).status_code for k in keys] == [404, 200, 200]
        health = client.get("/health").json()
        assert health["cached"] == 2 and health["cached_bytes"] > 0
        entry = health["cached_bytes"] // 2
    with TestClient(create_app(checkpoint, max_wait_ms=1, cache_mb=2.5 * entry / 2**20)) as client:
        keys = [_predict(client, data)["id"] for _ in range(3)]  # two entries fit in the bytes
        assert [_intervene(client, k).status_code for k in keys] == [404, 200, 200]
        assert client.get("/health").json()["cached_bytes"] == 2 * entry
    with TestClient(create_app(checkpoint, max_wait_ms=1, cache_ttl=60)) as client:
        cache = client.app.state.cache  # type: ignore[attr-defined]
        now = [cache.clock()]
        cache.clock = lambda: now[0]
        used, unused = _predict(client, data)["id"], _predict(client, data)["id"]
        now[0] += 59
        assert _intervene(client, used).status_code == 200  # used: 60 s more from now
        now[0] += 2
        gone = _intervene(client, unused)
        assert gone.status_code == 404 and _intervene(client, used).status_code == 200
        assert gone.json()["error"] == (f"no prediction {unused!r} is kept: unknown, unused for 60 s, or dropped for "
                                        f"newer ones (512 predictions, 134217728 bytes at most); send the image to "
                                        "/v1/predict again")


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"set": {"Colour": "present"}}, 400,
     "unknown characteristic(s) ['Colour']; this model's characteristics: Closed comedo, Cyst, "),
    ({"set": {"Scale": "maybe"}}, 400, "set a characteristic to 'present' or 'absent', not {'Scale': 'maybe'}; this "
                                       "model's characteristics: Closed comedo, Cyst, "),
    ({}, 422, 'invalid request (body.set: Field required); send JSON such as {"set": {"Scale": "present"'),
    ({"set": {"Scale": True}}, 422, "body.set.Scale: Input should be a valid string"),
])
def test_a_setting_the_model_cannot_take_is_refused(service: TestClient, image: Path, body: Any, status: int,
                                                    message: str) -> None:
    key = _predict(service, image.read_bytes())["id"]
    response = _intervene(service, key, body)
    assert response.status_code == status and set(response.json()) == {"error"}
    assert message in response.json()["error"]


def test_an_unknown_id_is_404(service: TestClient) -> None:
    response = _intervene(service, "0123abcd")
    assert response.status_code == 404 and response.json()["error"].startswith("no prediction '0123abcd' is kept")


def test_models_that_take_no_intervention_say_why(tmp_path: Path, image: Path) -> None:
    for kind, message in (("dx-only", "this model has no characteristics (a dx-only model): nothing to set"),
                          ("dermx", "the checkpoint records no intervention rule")):
        checkpoint = tiny_checkpoint(tmp_path / kind, kind=kind)
        with TestClient(create_app(checkpoint, max_wait_ms=1)) as client:
            assert _predict(client, image.read_bytes())["id"] is None  # nothing kept
            response = _intervene(client, "0123abcd")
            assert response.status_code == 400 and response.json()["error"].startswith(message)
            info = client.get("/v1/model").json()
            assert info["interventions"] is None and info["intervention_note"].startswith(message)
            assert client.get("/health").json()["cached"] == 0
        with pytest.raises(ServiceOptionError, match="caches predictions for interventions, which this model does "
                                                     "not take") as refused:
            create_app(checkpoint, n_cached=10)
        assert refused.value.option == "n_cached"
        result = CliRunner().invoke(cli, ["serve", "--model", str(checkpoint), "--cache-ttl", "30"])
        assert result.exit_code == 2 and "--cache-ttl" in result.output
        assert plain(message) in plain(result.output)


def test_without_kept_activations_an_intervention_says_why_it_has_no_map(checkpoint: Path, image: Path) -> None:
    with TestClient(create_app(checkpoint, max_wait_ms=1, cache_maps=False)) as client:
        first = _predict(client, image.read_bytes())
        assert first["overlays"]  # the prediction itself has its maps
        body = _intervene(client, first["id"]).json()
        assert body["overlays"] == []
        assert body["maps_note"] == "this service keeps no CAM-layer activations (dermx serve --no-cache-maps)"
        pooled_only = client.get("/health").json()["cached_bytes"]
    assert pooled_only == 4 * 512  # a ResNet-18's pooled features, float32


def test_a_cache_too_small_for_one_prediction_is_refused(checkpoint: Path) -> None:
    with pytest.raises(ServiceOptionError, match=r"cannot hold one prediction of this model, which keeps 10240 "
                                                 r"bytes \(its pooled features, and its CAM-layer activations") as e:
        create_app(checkpoint, cache_mb=0.005)
    assert e.value.option == "cache_mb"
    result = CliRunner().invoke(cli, ["serve", "--model", str(checkpoint), "--cache-mb", "0.005"])
    assert result.exit_code == 2 and "--cache-mb" in result.output


@pytest.mark.parametrize(("shown", "drawn"), [((96, 96), (64, 64)), ((480, 640), (48, 64)), ((40, 30), (40, 30)),
                                              ((1024, 100), (64, 6))])
def test_an_intervention_s_map_is_drawn_at_the_model_input_s_scale(shown: tuple[int, int],
                                                                   drawn: tuple[int, int]) -> None:
    from dermx.serve.app import _map_size

    assert _map_size(shown, (64, 64)) == drawn
