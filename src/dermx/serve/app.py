"""The FastAPI application: ``POST /v1/predict``, ``GET /v1/model``, ``GET /health`` and the page at ``/``.

The model is loaded once by :func:`create_app`; requests are decoded in the thread pool, then
batched onto a single model thread (:class:`~dermx.serve.batching.Batcher`). Every error, whatever
raised it, is answered with one shape, ``{"error": "..."}`` (:func:`error_response`), and a 4xx
status: 400 empty or not exactly one file, 408 body not received in time, 413 too large (bytes or
pixels), 415 not a supported image, 422 unreadable (e.g. truncated) or not a multipart upload with a
``file`` field, 503 too many requests waiting already (and, from the connection itself,
:mod:`dermx.serve.protocol`: 408 headers not received in time, 431 headers too large). Every answer
says ``X-Content-Type-Options: nosniff``, ``HEAD`` is answered wherever ``GET`` is, and the page has a
content security policy and refuses framing (:class:`HeadersAndHead`, :data:`PAGE_POLICY`). The request
body is capped before it is parsed, and must arrive by a deadline (:class:`BodyLimit`); multipart
parsing spools large parts to the system temp folder only.

Memory: at most ``max_decodes`` uploads are read, checked and decoded at once, and at most that many
responses rendered; a large image is decoded at a reduced scale (JPEG by the decoder itself, others
box-averaged right after decoding) whose shorter side stays ≥ ``max(display_max, 2 × model input)``,
and only a display-sized copy waits for the model. The API documentation page (``/docs``, Swagger UI)
loads its scripts and styles from the service itself, never from a CDN; ReDoc is not served.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dermx.data import DermXDBError
from dermx.explain.methods import method_title
from dermx.explain.overlay import colorbar_strip, data_url, frame_of, heat_layer, map_title, padded_canvas
from dermx.geometry import ResolutionPolicy, resize
from dermx.models import DermXNet
from dermx.predict import Prediction, Predictor, PreparedImage, UncalibratedError
from dermx.serve.batching import Batcher, QueueFullError
from dermx.serve.schemas import ErrorBody, Health, ModelInfo, PredictResponse
from dermx.serve.uploads import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_MAX_DECODES,
    DEFAULT_MAX_PIXELS,
    UploadError,
    UploadLimits,
    check_upload,
)
from dermx.text import shorten
from dermx.version import __version__

#: Multipart framing allowed on top of the file itself.
MULTIPART_SLACK = 64 * 1024
#: Statuses ``POST /v1/predict`` documents, each with the :class:`ErrorBody` shape.
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 408, 413, 415, 422, 503)}


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The service's one error shape: ``{"error": message}`` (:class:`ErrorBody`) with HTTP ``status``."""
    return JSONResponse(ErrorBody(error=message).model_dump(), status_code=status, headers=headers)


class BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` (413) before anything parses them, and
    bodies not received within ``body_timeout`` seconds of the request's start (408).

    A declared ``Content-Length`` over the limit is refused at once. A chunked body is counted as it
    arrives: past the limit the 413 is sent, the application sees the client disconnect, and whatever
    it would answer then is dropped. A body still arriving at the deadline is refused the same way,
    and the connection closed (a client sending a byte a second holds no connection for long).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, body_timeout: float | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.body_timeout = body_timeout

    def _refusal(self) -> JSONResponse:
        return error_response(413, f"request body exceeds {self.max_bytes} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refusal()(scope, receive, send)
            return
        seen = 0
        started = refused = complete = False
        loop = asyncio.get_running_loop()
        deadline = None if self.body_timeout is None else loop.time() + self.body_timeout

        async def counted() -> Message:
            nonlocal seen, refused, complete
            if refused:
                return {"type": "http.disconnect"}
            try:
                message = await (receive() if complete or deadline is None else
                                 asyncio.wait_for(receive(), max(0.0, deadline - loop.time())))
            except TimeoutError:
                refused = True
                if not started:
                    await error_response(408, f"request body not received within {self.body_timeout:g} s",
                                         {"connection": "close"})(scope, receive, send)
                return {"type": "http.disconnect"}
            complete = complete or (message["type"] == "http.request" and not message.get("more_body", False))
            seen += len(message.get("body", b""))
            if seen > self.max_bytes and not started:
                refused = True
                await self._refusal()(scope, receive, send)
                return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not refused:  # after a refusal, the app's failure to read the rest is expected
                raise


#: The page's content security policy: its own scripts, styles and requests only, overlays as ``data:``
#: images, no plug-ins, and no page may frame it (with ``X-Frame-Options: DENY`` for older browsers).
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class HeadersAndHead:
    """ASGI middleware: every response carries ``X-Content-Type-Options: nosniff``, and a ``HEAD`` request
    is answered as the ``GET`` of its path without the body (FastAPI routes ``GET`` only), so ``HEAD``
    works wherever ``GET`` does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"

        async def amended(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(raw=list(message.get("headers", [])))
                headers.setdefault("x-content-type-options", "nosniff")
                message = {**message, "headers": headers.raw}
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"} if head else scope, receive, amended)


def _busy(detail: str) -> UploadError:
    """The documented 503 of a full server."""
    return UploadError(503, f"server busy: {detail}; retry shortly")


def _validation_message(error: RequestValidationError) -> str:
    """One line from FastAPI's validation errors, e.g. ``body.file: Field required``."""
    found = "; ".join(f"{'.'.join(str(part) for part in item.get('loc', ()))}: {item.get('msg', 'invalid')}"
                      for item in error.errors())
    return f"invalid request ({found}); send one image as the multipart/form-data field 'file'"


def _render(prediction: Prediction, prepared: PreparedImage) -> dict[str, Any]:
    """JSON body: the prediction, the (display-sized) image, each map's heat layer at its size with its
    title, and the colour bar (all drawn by :mod:`dermx.explain.overlay`). When the model input was padded,
    the image is the whole input at the image's scale (padding hatched, :func:`padded_canvas`), the maps
    cover it, and ``input_area`` says where the image lies in it, as ``predict``'s figures show it."""
    frame = frame_of(prediction.placement, prediction.input_size)
    shown, box = (prepared.image, None) if frame is None else padded_canvas(prepared.image, frame)
    size = (shown.height, shown.width)
    overlays = []
    for label in prediction.maps:
        head, name = label.split(":", 1)
        probability = prediction.probability(label)
        values = (prediction.original_map(label, size) if frame is None else
                  resize(torch.from_numpy(prediction.maps[label])[None, None], size)[0, 0].numpy())
        overlays.append({"target": label, "head": head, "name": name, "probability": probability,
                         "title": map_title(label, probability, method_title(prediction.method),
                                            abstains=prediction.trust.abstain),
                         "png": data_url(heat_layer(values))})
    area = None if box is None else {"box": list(box), "size": list(size)}
    return {**prediction.to_dict(), "image": data_url(shown, "JPEG"), "overlays": overlays,
            "colorbar": data_url(colorbar_strip()), "input_area": area}


def create_app(model: DermXNet | str | Path, *, method: str = "gradcam", threshold: float = 0.5,
               resolution: ResolutionPolicy | None = None, max_upload_mb: float = 20,
               max_pixels: int = DEFAULT_MAX_PIXELS, max_batch: int = 8, max_wait_ms: float = 5,
               display_max: int = 1024, max_decodes: int = DEFAULT_MAX_DECODES, max_queue: int = 256,
               body_timeout: float | None = DEFAULT_BODY_TIMEOUT, abstain_risk: float | None = None) -> FastAPI:
    """The service for ``model`` (a loaded network or a checkpoint), loaded once here.

    ``resolution``: how uploads fit the input size (default: the model's own policy). At most
    ``max_queue`` prediction requests wait at once (for a decode slot or for the model); more are
    answered 503 at once. At most ``max_decodes`` uploads are decoded, and responses rendered, at once.
    A request body must arrive within ``body_timeout`` seconds (408 otherwise; ``None``: no deadline).
    ``abstain_risk``: the target risk of abstention of requests that name none (needs a calibrated model,
    :class:`~dermx.predict.UncalibratedError` otherwise); a request's form fields ``skin_tone`` and
    ``abstain_risk`` apply to its image (400 with an uncalibrated model).
    """
    if max_decodes < 1:
        raise ValueError(f"max_decodes must be positive, got {max_decodes}")
    predictor = Predictor(model, method=method, threshold=threshold, resolution=resolution, batch_size=max_batch,
                          abstain_risk=abstain_risk)
    limits = UploadLimits(max_bytes=int(max_upload_mb * 1024 * 1024), max_pixels=max_pixels)
    batcher: Batcher[PreparedImage, Prediction] = Batcher(predictor.run, max_batch=max_batch,
                                                         max_wait=max_wait_ms / 1000, max_queue=max_queue)
    info = predictor.model_info()
    min_side = max(display_max, 2 * max(predictor.model.config.input_size))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.slots = asyncio.Semaphore(max_decodes)  # bound to this server's event loop
        batcher.start()
        yield
        batcher.close()

    # Swagger UI from the package's own copy, without the validator badge (an external request); no
    # ReDoc: its page loads a logo from the ReDoc CDN
    app = FastAPIOffline(title="dermx", version=__version__, lifespan=lifespan, redoc_url=None,
                         swagger_ui_parameters={"validatorUrl": None},
                         description="Explainable dermatological diagnosis: diagnoses, characteristics, "
                                     "explanation maps.")
    app.state.predictor, app.state.batcher, app.state.limits = predictor, batcher, limits
    app.state.slots, app.state.pending = asyncio.Semaphore(max_decodes), 0
    app.add_middleware(BodyLimit, max_bytes=limits.max_bytes + MULTIPART_SLACK, body_timeout=body_timeout)
    app.add_middleware(HeadersAndHead)
    static = resources.files("dermx.serve") / "static"

    @app.exception_handler(UploadError)
    async def refused(_: Request, error: UploadError) -> JSONResponse:
        return error_response(error.status, error.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(422, _validation_message(error))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail), error.headers)

    @app.get("/health", response_model=Health)
    async def health() -> dict[str, Any]:
        return {"status": "ok", "queued": batcher.queued}

    @app.get("/v1/model", response_model=ModelInfo)
    async def model_info() -> dict[str, Any]:
        return info

    async def answer(file: UploadFile, skin_tone: str | None, risk: float | None) -> dict[str, Any]:
        """Read, check and decode the upload (``max_decodes`` at a time), predict in a batch, render."""
        name = shorten(file.filename or "upload")
        try:
            predictor.check_trust(skin_tone, risk)
        except UncalibratedError as error:
            raise UploadError(400, str(error)) from error
        slots: asyncio.Semaphore = app.state.slots
        async with slots:
            data = await file.read(limits.max_bytes + 1)
            await run_in_threadpool(check_upload, data, name, limits)
            try:
                prepared = await run_in_threadpool(predictor.prepare, data, name, min_side=min_side,
                                                   display_max=display_max, skin_tone=skin_tone, abstain_risk=risk)
            except DermXDBError as error:
                raise UploadError(422, str(error)) from error
            del data
        try:
            prediction = await batcher(prepared)
        except QueueFullError as error:
            raise _busy(str(error)) from error
        async with slots:
            return await run_in_threadpool(_render, prediction, prepared)

    @app.post("/v1/predict", response_model=PredictResponse, responses=ERRORS)
    async def predict(request: Request,
                      file: UploadFile = File(..., description="An image: JPEG, PNG, WebP, TIFF or BMP."),
                      skin_tone: str | None = Form(None, description="The image's skin tone (a calibration group "
                                                                     "of the model); default: unknown."),
                      abstain_risk: float | None = Form(None, ge=0.0, le=1.0, description=(
                          "Abstain when the calibrated top probability is below the confidence whose "
                          "validation error rate was at most this; default: the service's."))) -> Any:
        parts = (await request.form()).getlist("file")  # the form FastAPI parsed, cached by the request
        if len(parts) != 1:
            raise UploadError(400, f"send exactly one file in the 'file' field; got {len(parts)}")
        if app.state.pending >= max_queue:  # bounded waiting: for a decode slot or for the model
            raise _busy(f"{app.state.pending} requests are waiting already")
        app.state.pending += 1
        try:
            return await answer(file, skin_tone or None, abstain_risk)
        finally:
            app.state.pending -= 1

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(static / "index.html"),
                            headers={"content-security-policy": PAGE_POLICY, "x-frame-options": "DENY"})

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    return app
