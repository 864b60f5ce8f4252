"""The HTTP connection as ``dermx serve`` runs it: uvicorn's h11 protocol with deadlines and JSON errors.

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive`` seconds, but waits for the
headers of a request as long as the client keeps the connection open, so a few hundred clients sending
their headers a byte at a time hold as many connections. :func:`guarded_protocol` gives the protocol:

- a header deadline: a request's headers must be complete within ``header_timeout`` seconds of its
  first byte (or of the connection), else the answer is 408 and the connection is closed;
- a request head (request line and headers) over :data:`MAX_HEADER_BYTES` answered 431 and the
  connection closed, whether it arrives in pieces (h11's own limit) or at once (which h11 accepts
  whole): nothing of it reaches the application or the access log;
- the errors h11 raises on a request before any application sees it (a malformed request line or
  header: 400) answered in the service's one shape, ``{"error": "..."}``, instead of uvicorn's plain
  text.

The body has its own deadline, enforced in the application (:class:`dermx.serve.app.BodyLimit`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

#: Largest request head (request line and headers) accepted, in bytes: h11's own default, made explicit.
MAX_HEADER_BYTES = 16 * 1024
REASONS = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large"}


def json_error_bytes(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 response, ``{"error": message}`` with ``status``, closing the connection."""
    body = json.dumps({"error": message}).encode()
    head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\nx-content-type-options: nosniff\r\n\r\n")
    return head.encode("ascii") + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and JSON errors (module docstring)."""

    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._error: h11.RemoteProtocolError | None = None
        parse = self.conn.next_event

        def next_event() -> Any:  # keeps h11's error, which uvicorn's handler drops, for the answer
            try:
                return parse()
            except h11.RemoteProtocolError as error:
                self._error = error
                raise

        self.conn.next_event = next_event  # type: ignore[method-assign]

    def _watch_headers(self) -> None:
        """Arm the deadline while a request's headers are awaited; disarm it once they are in."""
        awaiting = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
        if awaiting and self._deadline is None:
            self._deadline = self.loop.call_later(self.header_timeout, self._headers_late)
        elif not awaiting and self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``{"error": message}`` with ``status`` and close the connection."""
        if not self.transport.is_closing():
            self.transport.write(json_error_bytes(status, message))
            self.transport.close()

    def _headers_late(self) -> None:
        self._deadline = None
        if self.conn.their_state is h11.IDLE:
            self._refuse(408, f"request headers not received within {self.header_timeout:g} s")

    def _head_too_large(self, data: bytes) -> bool:
        """Whether the request head being received, with ``data``, is over :data:`MAX_HEADER_BYTES`."""
        if self.conn.their_state is not h11.IDLE:
            return False
        pending = bytes(self.conn.trailing_data[0]) + data
        end = pending.find(b"\r\n\r\n")
        return (end if end >= 0 else len(pending)) > MAX_HEADER_BYTES

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_headers()

    def data_received(self, data: bytes) -> None:
        if self._head_too_large(data):
            self._refuse(431, f"request headers exceed {MAX_HEADER_BYTES} bytes")
            return
        super().data_received(data)
        self._watch_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request h11 refused, as ``{"error"}`` with h11's status (431: too large)."""
        status = self._error.error_status_hint if self._error is not None else 400
        message = (f"request headers exceed {MAX_HEADER_BYTES} bytes" if status == 431 else
                   f"malformed HTTP request ({self._error})" if self._error is not None else msg)
        self._refuse(status, message)


def guarded_protocol(header_timeout: float) -> type[GuardedH11Protocol]:
    """:class:`GuardedH11Protocol` with ``header_timeout`` seconds for a request's headers (uvicorn builds
    one protocol object per connection from the class)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"header_timeout": header_timeout})
