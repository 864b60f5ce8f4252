"""``dermx predict``: diagnoses, characteristics and explanation maps for image files and folders."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``predict`` command to ``app``."""

    @app.command("predict")
    def predict(
        images: list[Path] = typer.Argument(..., help="Image files and/or folders (searched recursively)."),
        model: Path = typer.Option(..., "--model", "-m", help="Checkpoint folder (or a file in it)."),
        out: Path | None = typer.Option(None, "--out", "-o",
                                        help="Write predictions.json and, per image, OUT/<image stem>/<target>.png "
                                             "(image beside the map, colour bar, target and probability) and "
                                             "OUT/<image stem>/maps.npz."),
        as_json: bool = typer.Option(False, "--json", help="Print the predictions as JSON on stdout."),
        threshold: float = typer.Option(0.5, help="Probability from which a characteristic is present."),
        method: str = typer.Option("gradcam", help="CAM method for the explanation maps."),
        batch_size: int = typer.Option(8, min=1, help="Images per forward pass."),
        resolution: str | None = typer.Option(None, help="How images fit the input size: pad, crop or "
                                                           "squash (default: as the model was trained)."),
    ) -> None:
        """Diagnose and explain images: ranked diagnoses, characteristics, overlays and maps."""
        from dermx.predict.run import run_predict

        code = run_predict(images, model=model, out=out, as_json=as_json, threshold=threshold, method=method,
                           batch_size=batch_size, resolution=resolution)
        raise typer.Exit(code)
