"""``dermx serve``: the web service and its page, on loopback by default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dermx.choices import ResolutionPolicy
from dermx.cli_common import PRESENT_FROM, guarded, option, refuse_option, renamed
from dermx.serve.cache import DEFAULT_CACHE_MB, DEFAULT_CACHE_TTL, DEFAULT_N_CACHED
from dermx.serve.uploads import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_KEEP_ALIVE,
    DEFAULT_MAX_DECODES,
    DEFAULT_MAX_PIXELS,
)


@guarded
def serve_command(
    model: Annotated[str, option("--model", "-m")],
    host: Annotated[str, typer.Option(help="Interface to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    max_upload_mb: Annotated[float, typer.Option(min=0.001, help="Largest accepted upload, in MB.")] = 20.0,
    max_pixels: Annotated[int, typer.Option(min=1, help="Largest accepted image, in pixels.")] = DEFAULT_MAX_PIXELS,
    threshold: Annotated[float | None, option("--threshold", default=str(PRESENT_FROM))] = None,
    method: Annotated[str, option("--method")] = "gradcam",
    resolution: Annotated[ResolutionPolicy | None, option("--resolution")] = None,
    batch_size: Annotated[int | None, option("--batch-size", default="8 on the CPU, 32 on a GPU")] = None,
    device: Annotated[str, option("--device")] = "auto",
    precision: Annotated[str, option("--precision")] = "32",
    max_decodes: Annotated[int, typer.Option(
        min=1, help="Uploads decoded at once (bounds the memory large images take).")] = DEFAULT_MAX_DECODES,
    max_queue: Annotated[int, typer.Option(
        min=1, help="Most prediction requests waiting at once; more get 503.")] = 256,
    header_timeout: Annotated[float, typer.Option(
        min=0.1, help="Seconds a request's headers may take to arrive (then 408 and closed).")
    ] = DEFAULT_HEADER_TIMEOUT,
    body_timeout: Annotated[float, typer.Option(
        min=0.1, help="Seconds a request's body may take to arrive (then 408 and closed).")
    ] = DEFAULT_BODY_TIMEOUT,
    keep_alive: Annotated[int, typer.Option(
        min=1, help="Seconds an idle keep-alive connection stays open.")] = DEFAULT_KEEP_ALIVE,
    weights: Annotated[Path | None, option("--weights")] = None,
    num_classes: Annotated[int | None, option("--n-classes")] = None,
    class_names: Annotated[Path | None, option("--class-names")] = None,
    abstain_risk: Annotated[float | None, option("--abstain-risk")] = None,
    n_cached: Annotated[int | None, typer.Option(
        "--n-cached", min=1, show_default=str(DEFAULT_N_CACHED),
        help="Most predictions kept for interventions (the least recently used is dropped first).")] = None,
    cache_mb: Annotated[float | None, typer.Option(
        min=0.001, show_default=f"{DEFAULT_CACHE_MB:g}",
        help="Most memory the kept predictions take, in MB (pooled features, and CAM-layer activations with "
             "--cache-maps).")] = None,
    cache_ttl: Annotated[float | None, typer.Option(
        min=0.1, show_default=f"{DEFAULT_CACHE_TTL:g}",
        help="Seconds a kept prediction lives after its last use.")] = None,
    cache_maps: Annotated[bool | None, typer.Option(
        "--cache-maps/--no-cache-maps", show_default="--cache-maps",
        help="Keep each prediction's CAM-layer activations, so that an intervention answers the map of its top "
             "diagnosis (without them: no map, less memory).")] = None,
) -> None:
    """Serve POST /v1/predict, POST /v1/predictions/{id}/intervene, GET /v1/model, GET /health and an
    upload page at /.

    --model is a dermx checkpoint, or a timm model name with --weights FILE (its classes ranked, the top
    class's map; no characteristics). --abstain-risk is the default of requests that name no
    abstain_risk. A model that takes interventions keeps each prediction's pass under its id
    (--n-cached, --cache-mb, --cache-ttl, --cache-maps), from which an intervention recomputes the
    diagnoses without the image.

    --device and --precision: where the model runs; requests are batched onto it, up to --batch-size images
    waiting up to 5 ms for one another on the CPU, 10 ms on a GPU."""
    import uvicorn

    from dermx.compute.cli import compute_of
    from dermx.explain.cli import predictable_model
    from dermx.predict import UncalibratedError
    from dermx.serve.app import ServiceOptionError, create_app
    from dermx.serve.protocol import MAX_HEADER_BYTES, guarded_protocol

    compute = compute_of(device, precision)
    loaded = predictable_model(model, weights, num_classes=num_classes, class_names=class_names,
                               threshold=threshold)
    try:
        service = create_app(loaded, method=method, threshold=PRESENT_FROM if threshold is None else threshold,
                             resolution=resolution, max_upload_mb=max_upload_mb, max_pixels=max_pixels,
                             max_batch=batch_size, max_decodes=max_decodes, max_queue=max_queue,
                             body_timeout=body_timeout, abstain_risk=abstain_risk, n_cached=n_cached,
                             cache_mb=cache_mb, cache_ttl=cache_ttl, cache_maps=cache_maps, compute=compute)
    except (UncalibratedError, ServiceOptionError) as error:
        refuse_option(error.option, str(error))
    uvicorn.run(service, host=host, port=port, log_level="info", http=guarded_protocol(header_timeout),
                timeout_keep_alive=keep_alive, h11_max_incomplete_event_size=MAX_HEADER_BYTES)


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to ``app``."""
    app.command("serve", cls=renamed({"--max-batch": "--batch-size"}))(serve_command)
