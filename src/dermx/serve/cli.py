"""``dermx serve``: the web service and its page, on loopback by default."""

from __future__ import annotations

from pathlib import Path

import typer

from dermx.serve.uploads import DEFAULT_MAX_DECODES, DEFAULT_MAX_PIXELS


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to ``app``."""

    @app.command("serve")
    def serve(
        model: Path = typer.Option(..., "--model", "-m", help="Checkpoint folder (or a file in it)."),
        host: str = typer.Option("127.0.0.1", help="Interface to listen on (loopback by default)."),
        port: int = typer.Option(8000, min=0, max=65535),
        max_upload_mb: float = typer.Option(20.0, min=0.001, help="Largest accepted upload, in MB."),
        max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, min=1, help="Largest accepted image, in pixels."),
        threshold: float = typer.Option(0.5, help="Probability from which a characteristic is present."),
        method: str = typer.Option("gradcam", help="CAM method for the explanation maps."),
        max_batch: int = typer.Option(8, min=1, help="Most images per model pass."),
        max_decodes: int = typer.Option(DEFAULT_MAX_DECODES, min=1,
                                        help="Uploads decoded at once (bounds the memory large images take)."),
        max_queue: int = typer.Option(256, min=1, help="Most prediction requests waiting at once; more get 503."),
    ) -> None:
        """Serve POST /v1/predict, GET /v1/model, GET /health and an upload page at /."""
        import uvicorn

        from dermx.models import CheckpointError
        from dermx.serve.app import create_app

        try:
            service = create_app(model, method=method, threshold=threshold, max_upload_mb=max_upload_mb,
                                 max_pixels=max_pixels, max_batch=max_batch, max_decodes=max_decodes,
                                 max_queue=max_queue)
        except (CheckpointError, ValueError) as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from error
        uvicorn.run(service, host=host, port=port, log_level="info")
