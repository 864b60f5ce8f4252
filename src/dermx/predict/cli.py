"""``dermx predict``: diagnoses, characteristics and explanation maps for image files and folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dermx.choices import ResolutionPolicy
from dermx.cli_common import PRESENT_FROM, guarded, option

#: Longest side, in pixels, of the image in ``predict``'s pictures by default (``--figure-size``): the
#: service page's display size too. Drawing costs about 70 bytes a pixel of the two panels at once
#: (matplotlib), so 1024 keeps ``predict --out`` on a 25-megapixel photo near 1.4 GB; 2048 takes 2 GB
#: (BENCHMARKS.md).
FIGURE_SIZE = 1024


@guarded
def predict_command(
    images: Annotated[list[Path], typer.Argument(help="Image files and/or folders (searched recursively).")],
    model: Annotated[str, option("--model", "-m")],
    out: Annotated[Path | None, option("--out", "-o")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the predictions as JSON on stdout.")] = False,
    threshold: Annotated[float | None, option("--threshold", default=str(PRESENT_FROM))] = None,
    method: Annotated[str, option("--method")] = "gradcam",
    batch_size: Annotated[int, option("--batch-size")] = 8,
    device: Annotated[str, option("--device")] = "auto",
    precision: Annotated[str, option("--precision")] = "32",
    n_workers: Annotated[int | None, option("--n-workers", default="the cores available")] = None,
    resolution: Annotated[ResolutionPolicy | None, option("--resolution")] = None,
    figure_size: Annotated[int, typer.Option(
        min=64, help="Longest side in pixels of the image in the pictures (larger images are drawn smaller).")
    ] = FIGURE_SIZE,
    native_maps: Annotated[bool, typer.Option(
        "--native-maps", help="Also store the maps at each image's own size in maps.npz (native_maps).")] = False,
    weights: Annotated[Path | None, option("--weights")] = None,
    num_classes: Annotated[int | None, option("--n-classes")] = None,
    class_names: Annotated[Path | None, option("--class-names")] = None,
    skin_tone: Annotated[str | None, typer.Option(
        "--skin-tone", help="The skin tone of every image given (a calibration group of the checkpoint, e.g. "
                            "light or dark): its temperature and set threshold; default: unknown, the overall "
                            "ones. Needs a calibrated checkpoint.")] = None,
    abstain_risk: Annotated[float | None, option("--abstain-risk")] = None,
    set_characteristics: Annotated[list[str] | None, typer.Option(
        "--set", metavar="NAME=present|absent",
        help="Set a characteristic as a clinician would (repeatable: --set Scale=present --set Pustule=absent): "
             "the diagnosis is recomputed with it; the output gives the diagnoses without the setting and each "
             "class's change.")] = None,
) -> None:
    """Diagnose and explain images: ranked diagnoses, characteristics, overlays and maps.

    With --out: OUT/predictions.json and, per image, OUT/<image stem>/<target>.png (the image beside
    its map, a colour bar, the target and its probability, padding hatched; an image larger than
    --figure-size is drawn at that size) for the top diagnosis and every present characteristic, and one
    OUT/<image stem>/maps.npz: targets, maps (on the model input), probabilities, logits, method, layer and
    the image's placement in the input (original_size, resized_size, inside, visible); with --native-maps
    also native_maps, the maps at the image's own size. `dermx explain` writes the same layout and keys.
    Inputs that would share a folder (lesion.jpg, lesion.png) keep their suffix (OUT/lesion.jpg/); each
    prediction in predictions.json names its folder.

    --model is a dermx checkpoint, or a timm model name with --weights FILE (its classes ranked, the top
    class's map; no characteristics).

    A checkpoint calibrated in training gives calibrated probabilities ("calibrated": true, "temperature"),
    the diagnosis set ("diagnosis_set", holding the true class for a "set_coverage" share of images like the
    validation ones) and, with --abstain-risk, "abstain" and its "reason" instead of a top diagnosis.

    --set NAME=present|absent sets a characteristic to the logit the model gives images it is sure have
    (95th percentile over its training images) or lack (5th) it, and recomputes the diagnosis; each
    prediction's "intervention" holds the setting, the diagnoses without it and each class's change.

    --device and --precision: where the model passes run and their autocast (probabilities and maps are
    float32 whatever they are); --n-workers processes read the images.
    """
    from dermx.compute.cli import compute_of
    from dermx.explain.cli import predictable_model
    from dermx.predict.run import run_predict

    compute = compute_of(device, precision, n_workers)
    loaded = predictable_model(model, weights, num_classes=num_classes, class_names=class_names,
                               threshold=threshold)
    code = run_predict(images, model=loaded, out=out, as_json=as_json,
                       threshold=PRESENT_FROM if threshold is None else threshold, method=method,
                       batch_size=batch_size, resolution=resolution, figure_size=figure_size,
                       native_maps=native_maps, skin_tone=skin_tone, abstain_risk=abstain_risk,
                       set_characteristics=set_characteristics or [], compute=compute)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add the ``predict`` command to ``app``."""
    app.command("predict")(predict_command)
