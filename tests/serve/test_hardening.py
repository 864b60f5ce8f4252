"""The service's network edges: HEAD wherever GET is served, nosniff everywhere, a content security policy
and frame denial on the page, names shortened in answers; and, on the real server (``dermx serve`` in a
subprocess), deadlines for a request's headers, its body and an idle connection, and oversize headers
answered in the ``{"error"}`` shape."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dermx.serve.loadtest import ServerProcess

GET_PATHS = ["/", "/health", "/v1/model", "/openapi.json", "/docs", "/static/app.js"]


@pytest.mark.parametrize("path", GET_PATHS)
def test_head_is_answered_wherever_get_is(client: TestClient, path: str) -> None:
    got, head = client.get(path), client.head(path)
    assert got.status_code == 200 and head.status_code == 200, (head.status_code, head.text)
    assert head.content == b"" and head.headers["content-type"] == got.headers["content-type"]


def test_head_of_a_post_only_path_is_405_with_the_error_shape(client: TestClient) -> None:
    response = client.head("/v1/predict")
    assert response.status_code == 405 and response.headers["allow"] == "POST" and response.content == b""


@pytest.mark.parametrize("send", [lambda c: c.get("/health"), lambda c: c.get("/"), lambda c: c.get("/nowhere"),
                                  lambda c: c.post("/v1/predict", files={"file": ("a.png", b"", "image/png")})])
def test_every_answer_says_nosniff(client: TestClient, send) -> None:
    assert send(client).headers["x-content-type-options"] == "nosniff"


def test_the_page_has_a_content_security_policy_and_cannot_be_framed(client: TestClient) -> None:
    headers = client.get("/").headers
    policy = dict(part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert policy["script-src"] == policy["style-src"] == policy["connect-src"] == "'self'"
    assert policy["img-src"] == "'self' data:"  # the overlays are data: images
    assert headers["x-frame-options"] == "DENY"


def test_a_long_upload_name_is_not_echoed_whole(client: TestClient) -> None:
    """(A longer name fails multipart parsing first: "Invalid multipart data.")"""
    response = client.post("/v1/predict", files={"file": ("x" * 4000 + ".png", b"", "image/png")})
    assert response.status_code == 400 and len(response.content) < 400, len(response.content)
    assert "(4,004 characters): the uploaded file is empty" in response.json()["error"]


# ----- the real server ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(checkpoint: Path) -> Iterator[ServerProcess]:
    with ServerProcess(checkpoint, "--header-timeout", "1", "--body-timeout", "2", "--keep-alive", "1") as process:
        yield process


def answer_within(port: int, data: bytes, seconds: float) -> tuple[bytes, float]:
    """Send ``data`` on a new connection and read until the server closes it: (everything read, seconds)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as connection:
        connection.sendall(data)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return received, time.monotonic() - start


def status_and_error(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["error"]


@pytest.mark.slow
def test_headers_sent_too_slowly_get_408_and_the_connection_closed(server: ServerProcess) -> None:
    answer, seconds = answer_within(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n", 10)
    assert status_and_error(answer) == (408, "request headers not received within 1 s") and seconds < 5


@pytest.mark.slow
def test_a_body_sent_too_slowly_gets_408_and_the_connection_closed(server: ServerProcess) -> None:
    head = (b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 1000\r\n\r\n--b\r\n")
    answer, seconds = answer_within(server.port, head, 10)
    assert status_and_error(answer) == (408, "request body not received within 2 s") and seconds < 6


@pytest.mark.slow
@pytest.mark.parametrize("request_head", [
    b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 40_000 + b"\r\n\r\n",
    b"GET /" + b"y" * 1_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"], ids=["header", "million-character-path"])
def test_oversize_headers_get_431_in_the_error_shape(server: ServerProcess, request_head: bytes) -> None:
    try:
        answer, _ = answer_within(server.port, request_head, 10)
    except ConnectionResetError:  # closed before all of it was sent: read the answer from a shorter one
        answer, _ = answer_within(server.port, request_head[:20_000], 10)
    assert status_and_error(answer) == (431, "request headers exceed 16384 bytes")
    assert max(map(len, server.log)) < 1000  # nothing of it echoed to the log


@pytest.mark.slow
def test_an_idle_keep_alive_connection_is_closed(server: ServerProcess) -> None:
    answer, seconds = answer_within(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 10)
    assert answer.startswith(b"HTTP/1.1 200") and b'"status":"ok"' in answer and seconds < 4
    assert b"x-content-type-options: nosniff" in answer.lower()


@pytest.mark.slow
def test_the_server_still_answers_and_logs_no_traceback(server: ServerProcess) -> None:
    answer, _ = answer_within(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 10)
    assert answer.startswith(b"HTTP/1.1 200")
    assert not [line for line in server.log if "Traceback" in line], "\n".join(server.log)
