"""The service's calibrated answers: the same fields as ``dermx predict``, per-request skin tone and
abstention, and refusals for a model without a calibration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dermx.predict import Predictor
from dermx.serve import create_app
from predict.samples import calibrated_checkpoint, encoded, photo

TRUST_KEYS = ("calibrated", "temperature", "skin_tone", "group_note", "diagnosis_set", "set_coverage",
              "set_threshold", "abstain_risk", "abstain_threshold", "abstain", "reason")


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return calibrated_checkpoint(tmp_path_factory.mktemp("calibrated"))


@pytest.fixture(scope="module")
def service(calibrated: Path) -> Iterator[TestClient]:
    with TestClient(create_app(calibrated, max_upload_mb=1, max_wait_ms=20, abstain_risk=1.0)) as client:
        yield client


def _post(client: TestClient, data: bytes, **form: str) -> Any:
    return client.post("/v1/predict", files={"file": ("lesion.png", data, "image/png")}, data=form)


def test_the_service_returns_what_predict_returns(service: TestClient, calibrated: Path) -> None:
    data = encoded(photo(seed=4), "PNG")
    for form in ({}, {"skin_tone": "dark"}, {"skin_tone": "dark", "abstain_risk": "0"}):
        response = _post(service, data, **form)
        assert response.status_code == 200, response.text
        body = response.json()
        predictor = Predictor(calibrated, skin_tone=form.get("skin_tone"),
                              abstain_risk=float(form.get("abstain_risk", 1.0)))
        (expected,) = [p.to_dict() for p in predictor.predict([data])]
        assert [d["name"] for d in body["diagnoses"]] == [d["name"] for d in expected["diagnoses"]]
        assert [d["probability"] for d in body["diagnoses"]] == pytest.approx(
            [d["probability"] for d in expected["diagnoses"]], abs=1e-6)
        for key in ("diagnosis", *TRUST_KEYS):
            want = expected[key]
            assert body[key] == (pytest.approx(want) if isinstance(want, float) else want), key
    assert body["abstain"] is True and body["diagnosis"] is None and body["reason"].startswith("uncertain: ")
    model = service.get("/v1/model").json()
    assert model["calibration"]["group_counts"] == {"dark": 150, "light": 150} and model["abstain_risk"] == 1.0


def test_an_uncalibrated_model_refuses_the_calibration_fields(client: TestClient) -> None:
    data = encoded(photo(seed=4), "PNG")
    body = _post(client, data).json()
    assert body["calibrated"] is False and body["diagnosis_set"] is None and body["calibration_note"]
    for field, value in (("abstain_risk", "0.1"), ("skin_tone", "dark")):
        response = _post(client, data, **{field: value})
        assert response.status_code == 400 and f"{field} needs a calibrated model" in response.json()["error"]
    assert _post(client, data, abstain_risk="2").status_code == 422
