"""The FastAPI application: ``POST /v1/predict``, ``POST /v1/predictions/{id}/intervene``, ``GET /v1/model``,
``GET /health`` and the page at ``/``.

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

Interventions (issue 28, :mod:`dermx.models.intervention`): a prediction of a model that takes them
answers an ``id``; ``POST /v1/predictions/{id}/intervene`` with ``{"set": {"Scale": "present"}}`` answers
that image's diagnoses with the characteristics set, recomputed by the heads from the pass kept under the
id (:meth:`~dermx.predict.Predictor.intervene`: no upload, no backbone pass), each class's change from
the model's own answer, and the new top diagnosis's map (the characteristics' maps are the prediction's).
The pass is kept in a :class:`~dermx.serve.cache.PredictionCache` bounded in entries, bytes and time since
last use: the pooled features always (``4 C`` bytes, 2 KB for a ResNet-18), the CAM-layer activations
with ``cache_maps`` (``4 K h w`` bytes, 32 KB for a ResNet-18 at 128 px, MBs for a dilated backbone at a
large input) when that layer is what the heads pool: the intervention's map then follows from them and the
heads' gradients alone; without them (or for a CAM layer inside the last block, or Score-CAM) an
intervention answers no map and says why (``maps_note``). An unknown, expired or evicted id is 404, a
setting the model cannot take 400 (naming its characteristics, or why it takes none).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from fastapi import Body, FastAPI, File, Form, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dermx.compute import Compute
from dermx.data import DermXDBError
from dermx.explain.methods import method_title
from dermx.explain.overlay import colorbar_strip, data_url, frame_of, heat_layer, map_title, padded_canvas
from dermx.geometry import ResolutionPolicy, resize
from dermx.models import DermXNet
from dermx.models.checkpoint import intervention_rule
from dermx.models.intervention import WORDS, InterventionError
from dermx.predict import Features, Prediction, Predictor, PreparedImage, UncalibratedError
from dermx.predict.predictor import Keep
from dermx.serve.batching import Batcher, QueueFullError, micro_batch
from dermx.serve.cache import DEFAULT_CACHE_MB, DEFAULT_CACHE_TTL, DEFAULT_N_CACHED, PredictionCache
from dermx.serve.schemas import ErrorBody, Health, InterventionRequest, InterventionResponse, ModelInfo, PredictResponse
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
#: Statuses ``POST /v1/predictions/{id}/intervene`` documents.
INTERVENE_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 404, 422, 503)}
#: What a request whose body FastAPI could not read should have sent, by the path's last part.
HINTS = {"intervene": 'send JSON such as {"set": {"Scale": "present", "Pustule": "absent"}}'}
UPLOAD_HINT = "send one image as the multipart/form-data field 'file'"


class ServiceOptionError(ValueError):
    """A :func:`create_app` option (:attr:`option`, its Python name) this model cannot use."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


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


def _validation_message(error: RequestValidationError, path: str) -> str:
    """One line from FastAPI's validation errors, e.g. ``body.file: Field required``, and what the request at
    ``path`` should send."""
    found = "; ".join(f"{'.'.join(str(part) for part in item.get('loc', ()))}: {item.get('msg', 'invalid')}"
                      for item in error.errors())
    return f"invalid request ({found}); {HINTS.get(path.rstrip('/').rpartition('/')[2], UPLOAD_HINT)}"


def _settings(given: Mapping[str, str], predictor: Predictor) -> dict[str, bool]:
    """``{"Scale": "present"}`` -> ``{"Scale": True}``; a value other than present / absent, or a name the
    model does not have, is an :class:`InterventionError` naming the model's characteristics."""
    names = ", ".join(predictor.model.target_names.get("characteristic", ()))
    bad = {name: word for name, word in given.items() if word.strip().lower() not in WORDS}
    if bad:
        raise InterventionError(f"set a characteristic to 'present' or 'absent', not {bad}; this model's "
                                f"characteristics: {names}")
    settings = {name: WORDS[word.strip().lower()] for name, word in given.items()}
    predictor.intervention_values(settings)
    return settings


def _overlays(prediction: Prediction, size: tuple[int, int]) -> list[dict[str, Any]]:
    """Each map's heat layer at ``size`` (the shown picture's, :func:`_render`) with its title."""
    frame = frame_of(prediction.placement, prediction.input_size)
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
    return overlays


def _render(prediction: Prediction, prepared: PreparedImage) -> tuple[dict[str, Any], tuple[int, int]]:
    """JSON body: the prediction, the (display-sized) image, each map's heat layer at its size with its
    title, and the colour bar (all drawn by :mod:`dermx.explain.overlay`); and the shown image's
    ``(height, width)``. When the model input was padded, the image is the whole input at the image's scale
    (padding hatched, :func:`padded_canvas`), the maps cover it, and ``input_area`` says where the image
    lies in it, as ``predict``'s figures show it."""
    frame = frame_of(prediction.placement, prediction.input_size)
    shown, box = (prepared.image, None) if frame is None else padded_canvas(prepared.image, frame)
    size = (shown.height, shown.width)
    area = None if box is None else {"box": list(box), "size": list(size)}
    return {**prediction.to_dict(), "image": data_url(shown, "JPEG"), "overlays": _overlays(prediction, size),
            "colorbar": data_url(colorbar_strip()), "input_area": area}, size


@dataclass(frozen=True)
class _Kept:
    """What the cache keeps of a prediction: its pass (:class:`~dermx.predict.Features`) and the size an
    intervention draws its map at (:func:`_map_size`)."""

    features: Features
    size: tuple[int, int]


def _map_size(shown: tuple[int, int], input_size: tuple[int, int]) -> tuple[int, int]:
    """The size an intervention's map is drawn at: the shown picture's shape at the model input's scale
    (longer side at most the input's), since the map holds no finer detail; the page stretches it over the
    picture. A 640 px PNG took 30–60 ms to encode, most of an intervention's time; the map at 64 px, 1 ms."""
    scale = min(1.0, max(input_size) / max(shown))
    return max(1, round(shown[0] * scale)), max(1, round(shown[1] * scale))


def _intervened(predictor: Predictor, kept: _Kept, settings: dict[str, bool], key: str,
                note: str | None) -> dict[str, Any]:
    """JSON body of an intervention on the prediction kept under ``key``: the prediction with ``settings``
    (:meth:`~dermx.predict.Predictor.intervene`), its top diagnosis's map as an overlay (:func:`_map_size`),
    and why there is none (``note`` overrides the features' own reason)."""
    prediction = predictor.intervene(kept.features, settings)
    missing = None if prediction.maps else note or kept.features.note
    return {**prediction.to_dict(), "id": key, "overlays": _overlays(prediction, kept.size), "maps_note": missing}


def _cache_plan(predictor: Predictor, n_cached: int | None, cache_mb: float | None, cache_ttl: float | None,
                cache_maps: bool | None) -> tuple[PredictionCache[_Kept] | None, Keep | None, str]:
    """The cache of an intervening model, what its predictions keep, and why a model keeps nothing (the
    options then have no effect: :class:`ServiceOptionError`). One blank image's pass measures an entry:
    a cache too small for one is an error too."""
    try:
        intervention_rule(predictor.model.config)
    except InterventionError as error:
        given = {"n_cached": n_cached, "cache_mb": cache_mb, "cache_ttl": cache_ttl, "cache_maps": cache_maps}
        for name, value in given.items():
            if value is not None:
                raise ServiceOptionError(name, f"caches predictions for interventions, which this model does not "
                                               f"take: {error}") from error
        return None, None, str(error)
    keep: Keep = "pooled" if cache_maps is False else "activations"
    limit = int((DEFAULT_CACHE_MB if cache_mb is None else cache_mb) * 1024 * 1024)
    blank = predictor.prepare(Image.new("RGB", predictor.spec.size[::-1]), "blank")
    (probe,) = predictor.run([blank], keep=keep)
    assert probe.features is not None
    if probe.features.nbytes > limit:
        maps = probe.features.activations is not None
        raise ServiceOptionError("cache_mb", f"{limit / 2**20:g} MB cannot hold one prediction of this model, which "
                                             f"keeps {probe.features.nbytes} bytes (its pooled features"
                                             + (", and its CAM-layer activations unless maps are not cached)" if maps
                                                else ")"))
    cache: PredictionCache[_Kept] = PredictionCache(DEFAULT_N_CACHED if n_cached is None else n_cached, limit,
                                                    DEFAULT_CACHE_TTL if cache_ttl is None else cache_ttl)
    return cache, keep, ""


def create_app(model: DermXNet | str | Path, *, method: str = "gradcam", threshold: float = 0.5,
               resolution: ResolutionPolicy | None = None, max_upload_mb: float = 20,
               max_pixels: int = DEFAULT_MAX_PIXELS, max_batch: int | None = None, max_wait_ms: float | None = None,
               display_max: int = 1024, max_decodes: int = DEFAULT_MAX_DECODES, max_queue: int = 256,
               body_timeout: float | None = DEFAULT_BODY_TIMEOUT, abstain_risk: float | None = None,
               n_cached: int | None = None, cache_mb: float | None = None, cache_ttl: float | None = None,
               cache_maps: bool | None = None, compute: Compute | None = None) -> FastAPI:
    """The service for ``model`` (a loaded network or a checkpoint), loaded once here.

    ``compute``: the device and precision of the model (:class:`~dermx.predict.Predictor`; default: the
    accelerator if any, float32). Requests are batched onto it (:class:`~dermx.serve.batching.Batcher`) up to
    ``max_batch`` images, waiting up to ``max_wait_ms`` for more; by default both follow the device
    (:func:`~dermx.serve.batching.micro_batch`: 8 images and 5 ms on the CPU, 32 and 10 ms on a GPU).
    ``resolution``: how uploads fit the input size (default: the model's own policy). At most
    ``max_queue`` prediction requests wait at once (for a decode slot or for the model); more are
    answered 503 at once. At most ``max_decodes`` uploads are decoded, and responses rendered, at once.
    A request body must arrive within ``body_timeout`` seconds (408 otherwise; ``None``: no deadline).
    ``abstain_risk``: the target risk of abstention of requests that name none (needs a calibrated model,
    :class:`~dermx.predict.UncalibratedError` otherwise); a request's form fields ``skin_tone`` and
    ``abstain_risk`` apply to its image (400 with an uncalibrated model).

    Interventions (module docstring): at most ``n_cached`` predictions (default
    :data:`~dermx.serve.cache.DEFAULT_N_CACHED`) and ``cache_mb`` MB of them are kept, each ``cache_ttl``
    seconds after its last use; ``cache_maps=False`` keeps the pooled features only (interventions answer
    no maps). Given for a model that takes no interventions, or too small for one prediction:
    :class:`ServiceOptionError` naming the option.
    """
    if max_decodes < 1:
        raise ValueError(f"max_decodes must be positive, got {max_decodes}")
    compute = compute or Compute()
    max_batch, max_wait = micro_batch(compute.check().type, max_batch, max_wait_ms)
    predictor = Predictor(model, method=method, threshold=threshold, resolution=resolution, batch_size=max_batch,
                          abstain_risk=abstain_risk, compute=compute)
    limits = UploadLimits(max_bytes=int(max_upload_mb * 1024 * 1024), max_pixels=max_pixels)
    cache, keep, no_interventions = _cache_plan(predictor, n_cached, cache_mb, cache_ttl, cache_maps)
    maps_note = "this service keeps no CAM-layer activations (dermx serve --no-cache-maps)" if cache_maps is False \
        else None
    batcher: Batcher[PreparedImage, Prediction] = Batcher(functools.partial(predictor.run, keep=keep),
                                                         max_batch=max_batch, max_wait=max_wait,
                                                         max_queue=max_queue)
    info = {**predictor.model_info(), "max_batch": max_batch, "max_wait_ms": max_wait * 1000,
            "intervention_note": no_interventions,
            "interventions": None if cache is None else intervention_rule(predictor.model.config).to_dict()}
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
    app.state.predictor, app.state.batcher, app.state.limits, app.state.cache = predictor, batcher, limits, cache
    app.state.slots, app.state.pending = asyncio.Semaphore(max_decodes), 0
    app.add_middleware(BodyLimit, max_bytes=limits.max_bytes + MULTIPART_SLACK, body_timeout=body_timeout)
    app.add_middleware(HeadersAndHead)
    static = resources.files("dermx.serve") / "static"

    @app.exception_handler(UploadError)
    async def refused(_: Request, error: UploadError) -> JSONResponse:
        return error_response(error.status, error.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(422, _validation_message(error, request.url.path))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail), error.headers)

    @app.get("/health", response_model=Health)
    async def health() -> dict[str, Any]:
        return {"status": "ok", "queued": batcher.queued, "cached": 0 if cache is None else len(cache),
                "cached_bytes": 0 if cache is None else cache.nbytes}

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
            body, size = await run_in_threadpool(_render, prediction, prepared)
        features = prediction.features
        key = None if cache is None or features is None else cache.add(
            _Kept(features, _map_size(size, predictor.spec.size)), features.nbytes)
        return {**body, "id": key}

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

    @app.post("/v1/predictions/{prediction_id}/intervene", response_model=InterventionResponse,
              responses=INTERVENE_ERRORS)
    async def intervene(prediction_id: str = PathParam(description="The `id` of a prediction (`POST /v1/predict`)."),
                        body: InterventionRequest = Body()) -> Any:
        """The prediction's diagnoses with characteristics set present or absent, recomputed from its kept
        pass by the heads alone (no upload, no backbone pass): calibrated and abstaining as predictions are,
        each class's change from the model's own answer, and the map of the top diagnosis."""
        if cache is None:
            raise HTTPException(400, no_interventions)
        kept = cache.get(prediction_id)
        if kept is None:
            raise HTTPException(404, f"no prediction {shorten(prediction_id)!r} is kept: unknown, unused for "
                                     f"{cache.ttl:g} s, or dropped for newer ones ({cache.max_entries} predictions, "
                                     f"{cache.max_bytes} bytes at most); send the image to /v1/predict again")
        try:
            settings = _settings(body.set, predictor)
        except InterventionError as error:
            raise HTTPException(400, str(error)) from error
        if app.state.pending >= max_queue:
            raise _busy(f"{app.state.pending} requests are waiting already")
        app.state.pending += 1
        try:
            slots: asyncio.Semaphore = app.state.slots
            async with slots:
                return await run_in_threadpool(_intervened, predictor, kept, settings, prediction_id, maps_note)
        finally:
            app.state.pending -= 1

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(static / "index.html"),
                            headers={"content-security-policy": PAGE_POLICY, "x-frame-options": "DENY"})

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    return app
