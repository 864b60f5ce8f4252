"""The FastAPI application: ``POST /v1/predict``, ``GET /v1/model``, ``GET /health`` and the page at ``/``.

The model is loaded once by :func:`create_app`; requests are decoded in the thread pool, then
batched onto a single model thread (:class:`~dermx.serve.batching.Batcher`). Bad input is answered
with a JSON ``{"error": ...}`` and a 4xx status: 400 empty, 413 too large (bytes or pixels), 415 not a
supported image, 422 unreadable (e.g. truncated), 503 queue full. The request body is capped before
it is parsed (:class:`BodyLimit`); multipart parsing spools large parts to the system temp folder
only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dermx.data import DermXDBError
from dermx.models import DermXNet
from dermx.models.checkpoint import dermx_version
from dermx.predict import Prediction, Predictor, PreparedImage, data_url, display_size, heat_layer
from dermx.serve.batching import Batcher, QueueFullError
from dermx.serve.schemas import ErrorBody, Health, ModelInfo, PredictResponse
from dermx.serve.uploads import UploadError, UploadLimits, check_upload

#: Multipart framing allowed on top of the file itself.
MULTIPART_SLACK = 64 * 1024
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 413, 415, 422, 503)}


class BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` (413) before anything parses them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise UploadError(413, f"request body exceeds {self.max_bytes} bytes")
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse({"error": f"request body exceeds {self.max_bytes} bytes"}, status_code=413)
        await response(scope, receive, send)


def _render(prediction: Prediction, prepared: PreparedImage, longest: int) -> dict[str, Any]:
    """JSON body: the prediction, the oriented image and each map's heat layer at display size."""
    size = display_size(prediction.original_size, longest)
    shown = prepared.image
    if size != prediction.original_size:
        shown = shown.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    overlays = []
    for label in prediction.maps:
        head, name = label.split(":", 1)
        overlays.append({"target": label, "head": head, "name": name,
                         "png": data_url(heat_layer(prediction.original_map(label, size)))})
    return {**prediction.to_dict(), "image": data_url(shown, "JPEG"), "overlays": overlays}


def create_app(model: DermXNet | str | Path, *, method: str = "gradcam", threshold: float = 0.5,
               max_upload_mb: float = 20, max_pixels: int = 40_000_000, max_batch: int = 8,
               max_wait_ms: float = 5, display_max: int = 1024) -> FastAPI:
    """The service for ``model`` (a loaded network or a checkpoint), loaded once here."""
    predictor = Predictor(model, method=method, threshold=threshold, batch_size=max_batch)
    limits = UploadLimits(max_bytes=int(max_upload_mb * 1024 * 1024), max_pixels=max_pixels)
    batcher: Batcher[PreparedImage, Prediction] = Batcher(predictor.run, max_batch=max_batch,
                                                         max_wait=max_wait_ms / 1000)
    info = predictor.model_info()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        batcher.close()

    app = FastAPI(title="dermx", version=dermx_version(), lifespan=lifespan,
                  description="Explainable dermatological diagnosis: diagnoses, characteristics, explanation maps.")
    app.state.predictor, app.state.batcher, app.state.limits = predictor, batcher, limits
    app.add_middleware(BodyLimit, max_bytes=limits.max_bytes + MULTIPART_SLACK)
    static = resources.files("dermx.serve") / "static"

    @app.exception_handler(UploadError)
    async def refused(_: Request, error: UploadError) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.get("/health", response_model=Health)
    async def health() -> dict[str, Any]:
        return {"status": "ok", "queued": batcher.queued}

    @app.get("/v1/model", response_model=ModelInfo)
    async def model_info() -> dict[str, Any]:
        return info

    @app.post("/v1/predict", response_model=PredictResponse, responses=ERRORS)
    async def predict(file: UploadFile = File(..., description="An image: JPEG, PNG, WebP, TIFF or BMP.")) -> Any:
        name = file.filename or "upload"
        data = await file.read(limits.max_bytes + 1)
        await run_in_threadpool(check_upload, data, name, limits)
        try:
            prepared = await run_in_threadpool(predictor.prepare, data, name)
        except DermXDBError as error:
            raise UploadError(422, str(error)) from error
        try:
            prediction = await batcher(prepared)
        except QueueFullError as error:
            raise UploadError(503, f"server busy: {error}; retry shortly") from error
        return await run_in_threadpool(_render, prediction, prepared, display_max)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(static / "index.html"))

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    return app
