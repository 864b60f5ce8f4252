"""``dermx explain``: CAMs for a folder of images: ``OUT/<image stem>/maps.npz`` and ``<target>.png``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from dermx.explain.targets import TargetSpec


def register(app: typer.Typer) -> None:
    """Add the ``explain`` command to ``app``."""
    app.command("explain")(explain_command)


def parse_targets(text: str | None) -> list[TargetSpec] | None:
    """``"0,Plaque,diagnosis:Psoriasis,diagnosis:2"`` → ``[0, "Plaque", ("diagnosis", "Psoriasis"), ...]``."""
    if text is None:
        return None
    specs: list[TargetSpec] = []
    for item in (part.strip() for part in text.split(",")):
        head, sep, key = item.partition(":")
        if sep:
            specs.append((head.strip(), int(key) if re.fullmatch(r"-?\d+", key.strip()) else key.strip()))
        elif item:
            specs.append(int(item) if re.fullmatch(r"-?\d+", item) else item)
    return specs


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"224"`` → (224, 224); ``"256x192"`` → (256, 192) as (height, width)."""
    if text is None:
        return None
    match = re.fullmatch(r"(\d+)(?:[xX](\d+))?", text.strip())
    if not match:
        raise typer.BadParameter(f"size must be N or HxW, got {text!r}")
    height = int(match.group(1))
    return height, int(match.group(2) or height)


def load_model(spec: str, weights: Path | None
               ) -> tuple[Any, tuple[int, int], tuple[float, ...], tuple[float, ...], str]:
    """``(model, input size, mean, std, resolution policy)`` from a DermX checkpoint (folder or
    file) or a timm model name."""
    from rich.console import Console

    if Path(spec).exists():
        from dermx.models import load_checkpoint

        model = load_checkpoint(Path(spec))
        config = model.config
        return model.eval(), tuple(config.input_size), tuple(config.mean), tuple(config.std), "pad"
    import timm

    if not timm.is_model(spec):
        raise typer.BadParameter(f"{spec!r} is neither a checkpoint file nor a timm model name", param_hint="--model")
    model = timm.create_model(spec, pretrained=False)
    if weights is None:
        Console(stderr=True).print(f"[yellow]warning:[/] {spec} has random weights (pretrained=False); "
                                   "pass --weights FILE for meaningful maps")
    else:
        from dermx.models.weights import WeightsError, read_state_dict

        try:
            model.load_state_dict(read_state_dict(weights))
        except WeightsError as error:
            raise typer.BadParameter(str(error), param_hint="--weights") from error
    data = timm.data.resolve_data_config({}, model=model)
    return model.eval(), tuple(data["input_size"][1:]), tuple(data["mean"]), tuple(data["std"]), "squash"


def explain_command(
    model: Annotated[str, typer.Option("--model", help="DermX checkpoint (folder or file) or timm model name.")],
    images: Annotated[Path, typer.Option("--images", exists=True, file_okay=False, help="Folder of images.")],
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="Output folder.")],
    method: Annotated[str, typer.Option(help="gradcam, gradcam++, xgradcam, hirescam, layercam, cam, "
                                             "scorecam or eigencam.")] = "gradcam",
    targets: Annotated[str | None, typer.Option(help="Comma-separated targets: index, name or head:name. "
                                                     "Default: every output of every head.")] = None,
    size: Annotated[str | None, typer.Option(help="Model input size, N or HxW. Default: the model's.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 8,
    weights: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                 help="State dict for a timm model (.safetensors or torch).")] = None,
    layer: Annotated[str | None, typer.Option(help="Target layer (dotted path). Default: per architecture.")] = None,
    zero_absent: Annotated[bool, typer.Option(help="Zero maps of targets predicted absent (logit < 0).")] = False,
) -> None:
    """Compute CAMs for every image in a folder.

    Writes OUT/<image stem>/maps.npz (maps on the model input, targets, logits, probabilities) and one
    OUT/<image stem>/<target>.png per target: the image beside the map overlay, a colour bar, the target
    and its probability in the title, padding added for the model input hatched. `dermx predict` writes
    the same layout.
    """
    from rich.progress import track

    from dermx.explain.engine import CamEngine
    from dermx.explain.images import list_images, load_framed, to_batch
    from dermx.explain.methods import method_title
    from dermx.explain.outputs import write_explanations
    from dermx.explain.targets import target_probabilities

    net, input_size, mean, std, policy = load_model(model, weights)
    input_size = parse_size(size) or input_size
    specs = parse_targets(targets)
    if specs is None and not hasattr(net, "target_names"):
        raise typer.BadParameter("a plain classifier needs --targets (e.g. --targets 0,1)", param_hint="--targets")
    try:
        paths = list_images(images)
        engine = CamEngine(net, method, layer, zero_absent=zero_absent)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    batches = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]
    for batch_paths in track(batches, description=f"{engine.method.name} maps"):
        framed = [load_framed(path, input_size, policy) for path in batch_paths]
        try:
            result = engine(to_batch([pixels for pixels, _, _ in framed], mean, std), specs)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from error
        maps, logits = result.maps.cpu().numpy(), result.target_logits.cpu().numpy()
        probabilities = target_probabilities(result.logits, result.targets).cpu().numpy()
        for i, (path, (pixels, image, frame)) in enumerate(zip(batch_paths, framed, strict=True)):
            write_explanations(out / path.stem, image=image, pixels=pixels, frame=frame, labels=result.labels,
                               maps=maps[i], logits=logits[i], probabilities=probabilities[i],
                               layer=result.layer, method=method_title(engine.method.name))
    typer.echo(f"wrote maps for {len(paths)} images x {len(result.labels)} targets to {out}")
