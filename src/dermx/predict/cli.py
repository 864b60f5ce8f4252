"""``dermx predict``: diagnoses, characteristics and explanation maps for image files and folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dermx.cli_common import PRESENT_FROM, guarded, option


@guarded
def predict_command(
    images: Annotated[list[Path], typer.Argument(help="Image files and/or folders (searched recursively).")],
    model: Annotated[str, option("--model", "-m")],
    out: Annotated[Path | None, option("--out", "-o")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the predictions as JSON on stdout.")] = False,
    threshold: Annotated[float | None, option("--threshold", default=str(PRESENT_FROM))] = None,
    method: Annotated[str, option("--method")] = "gradcam",
    batch_size: Annotated[int, option("--batch-size")] = 8,
    resolution: Annotated[str | None, option("--resolution")] = None,
    weights: Annotated[Path | None, option("--weights")] = None,
    num_classes: Annotated[int | None, option("--num-classes")] = None,
    class_names: Annotated[Path | None, option("--class-names")] = None,
) -> None:
    """Diagnose and explain images: ranked diagnoses, characteristics, overlays and maps.

    With --out: OUT/predictions.json and, per image, OUT/<image stem>/<target>.png (the image beside
    its map, a colour bar, the target and its probability, padding hatched) for the top diagnosis and
    every present characteristic, and one OUT/<image stem>/maps.npz: targets, maps (on the model
    input), probabilities, logits, method, layer and the image's placement in the input (original_size,
    resized_size, inside, visible). `dermx explain` writes the same layout and keys.

    --model is a dermx checkpoint, or a timm model name with --weights FILE (its classes ranked, the top
    class's map; no characteristics).
    """
    from dermx.explain.cli import predictable_model
    from dermx.predict.run import run_predict

    loaded = predictable_model(model, weights, num_classes=num_classes, class_names=class_names,
                               threshold=threshold)
    code = run_predict(images, model=loaded, out=out, as_json=as_json,
                       threshold=PRESENT_FROM if threshold is None else threshold, method=method,
                       batch_size=batch_size, resolution=resolution)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add the ``predict`` command to ``app``."""
    app.command("predict")(predict_command)
