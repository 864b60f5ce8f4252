"""Every error the service answers has one shape, ``{"error": ...}``, as its published OpenAPI schema says."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from dermx.serve import QueueFullError
from predict.samples import encoded, photo, png_declaring

Send = Callable[[TestClient], httpx.Response]
BOUNDARY = "dermxtestboundary"


def _conforms(value: Any, schema: dict[str, Any], components: dict[str, Any], where: str = "body") -> list[str]:
    """Where ``value`` breaks ``schema`` (the subset of JSON Schema FastAPI publishes); [] if nowhere."""
    if "$ref" in schema:
        return _conforms(value, components[schema["$ref"].rsplit("/", 1)[1]], components, where)
    if "anyOf" in schema:
        if any(not _conforms(value, option, components, where) for option in schema["anyOf"]):
            return []
        return [f"{where}: {value!r} matches none of {schema['anyOf']}"]
    kind = schema.get("type")
    checks: dict[str, Callable[[Any], bool]] = {
        "object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool), "null": lambda v: v is None}
    if kind is not None and not checks[kind](value):
        return [f"{where}: {value!r} is not of type {kind}"]
    problems: list[str] = []
    if kind == "object":
        properties = schema.get("properties", {})
        problems += [f"{where}: missing {key!r}" for key in schema.get("required", []) if key not in value]
        extra = schema.get("additionalProperties")  # a mapping: every key's value has this schema
        problems += [f"{where}: undocumented {key!r}" for key in value if key not in properties and extra is None]
        for key, item in value.items():
            if key in properties or isinstance(extra, dict):
                problems += _conforms(item, properties.get(key, extra), components, f"{where}.{key}")
    if kind == "array" and "items" in schema:
        for index, item in enumerate(value):
            problems += _conforms(item, schema["items"], components, f"{where}[{index}]")
    return problems


def _upload(data: bytes, name: str, field: str = "file") -> Send:
    return lambda client: client.post("/v1/predict", files={field: (name, data, "application/octet-stream")})


def _chunked_oversize(client: TestClient) -> httpx.Response:
    def parts() -> Iterator[bytes]:
        yield (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
               f"Content-Type: image/png\r\n\r\n").encode()
        for _ in range(40):  # 2.5 MB in 64 kB chunks, no Content-Length; the limit is 1 MB here
            yield bytes(65536)
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    return client.post("/v1/predict", content=parts(),
                       headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"})


def _two_files(client: TestClient) -> httpx.Response:
    picture = encoded(photo(), "PNG")
    return client.post("/v1/predict", files=[("file", ("a.png", picture, "image/png")),
                                              ("file", ("b.png", picture, "image/png"))])


CASES: dict[str, tuple[Send, int]] = {
    "empty": (_upload(b"", "empty.jpg"), 400),
    "two files": (_two_files, 400),
    "malformed multipart": (lambda c: c.post("/v1/predict", content=b"--x\r\nnot a part",
                                             headers={"content-type": "multipart/form-data; boundary=x"}), 400),
    "declared oversize": (lambda c: c.post("/v1/predict", content=b"x" * 3_000_000,
                                           headers={"content-type": "application/octet-stream"}), 413),
    "chunked oversize": (_chunked_oversize, 413),
    "too many pixels": (_upload(png_declaring(8000, 8000), "large.png"), 413),
    "not an image": (_upload(b"just some words\n" * 20, "notes.txt"), 415),
    "gif": (_upload(encoded(photo(), "GIF"), "anim.gif"), 415),
    "truncated": (_upload(encoded(photo(200, 150), "JPEG")[:3000], "cut.jpg"), 422),
    "no body": (lambda c: c.post("/v1/predict"), 422),
    "misnamed field": (_upload(encoded(photo(), "PNG"), "a.png", field="image"), 422),
    "not multipart": (lambda c: c.post("/v1/predict", json={"file": "a.png"}), 422),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_error_matches_the_published_schema(client: TestClient, case: str) -> None:
    send, status = CASES[case]
    response = send(client)
    assert response.status_code == status, response.text
    schema = client.get("/openapi.json").json()
    documented = schema["paths"]["/v1/predict"]["post"]["responses"]
    assert str(status) in documented, f"{status} is not documented"
    body_schema = documented[str(status)]["content"]["application/json"]["schema"]
    assert _conforms(response.json(), body_schema, schema["components"]["schemas"]) == []
    assert set(response.json()) == {"error"} and response.json()["error"]


@pytest.mark.parametrize("where", ["model queue", "waiting requests"])
def test_a_full_server_answers_a_documented_503(client: TestClient, monkeypatch: pytest.MonkeyPatch,
                                                 where: str) -> None:
    def full(_: object) -> None:
        raise QueueFullError("256 requests are waiting already")

    state = client.app.state  # type: ignore[attr-defined]
    if where == "model queue":
        monkeypatch.setattr(state.batcher, "submit", full)
    else:
        state.pending = 256  # as if 256 requests were waiting (monkeypatch cannot restore a State attribute)
    try:
        response = _upload(encoded(photo(), "PNG"), "a.png")(client)
    finally:
        state.pending = 0
    assert response.status_code == 503 and "server busy: 256 requests are waiting" in response.json()["error"]
    schema = client.get("/openapi.json").json()
    body_schema = schema["paths"]["/v1/predict"]["post"]["responses"]["503"]["content"]["application/json"]["schema"]
    assert _conforms(response.json(), body_schema, schema["components"]["schemas"]) == []


def test_chunked_oversize_is_413_not_400(client: TestClient) -> None:
    response = _chunked_oversize(client)
    assert response.status_code == 413 and "exceeds" in response.json()["error"]
    assert client.get("/health").json()["status"] == "ok"  # the server is fine afterwards


def test_two_file_parts_are_refused(client: TestClient) -> None:
    response = _two_files(client)
    assert response.status_code == 400 and "exactly one file" in response.json()["error"]


@pytest.mark.parametrize("data", [b"just some words\n" * 20, b"\x00" * 64])
def test_unreadable_upload_message_names_the_file(client: TestClient, data: bytes) -> None:
    message = _upload(data, "scan-0042.txt")(client).json()["error"]
    assert message.startswith("scan-0042.txt: ")
    assert "BytesIO" not in message and " at 0x" not in message


def test_other_http_errors_have_the_same_shape(client: TestClient) -> None:
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and set(missing.json()) == {"error"}
    wrong = client.delete("/v1/predict")
    assert wrong.status_code == 405 and set(wrong.json()) == {"error"} and wrong.headers["allow"] == "POST"


def test_model_information_matches_its_schema(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    documented = schema["paths"]["/v1/model"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert _conforms(client.get("/v1/model").json(), documented, schema["components"]["schemas"]) == []
