"""``dermx explain``: CAMs for a folder of images, one compressed ``.npz`` and overlay PNGs per image."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dermx.cli_common import SizeArg, guarded, option, renamed

if TYPE_CHECKING:
    from dermx.explain.targets import TargetSpec


def register(app: typer.Typer) -> None:
    """Add the ``explain`` command to ``app``."""
    app.command("explain", cls=renamed({"--size": "--input-size"}))(explain_command)


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


def load_model(spec: str, weights: Path | None
               ) -> tuple[Any, tuple[int, int], tuple[float, ...], tuple[float, ...], str]:
    """``(model, input size, mean, std, resolution policy)`` from a DermX checkpoint (folder or
    file) or a timm model name."""
    from rich.console import Console

    if Path(spec).exists():
        from dermx.models import load_checkpoint

        model = load_checkpoint(Path(spec))
        config = model.config
        return model.eval(), tuple(config.input_size), tuple(config.mean), tuple(config.std), config.resolution
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


def _file_label(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_")


@guarded
def explain_command(
    model: Annotated[str, typer.Option("--model", help="DermX checkpoint (folder or file) or timm model name.")],
    images: Annotated[Path, option("--images")],
    out: Annotated[Path, option("--out")],
    method: Annotated[str, option("--method")] = "gradcam",
    targets: Annotated[str | None, typer.Option(help="Comma-separated targets: index, name or head:name. "
                                                     "Default: every output of every head.")] = None,
    input_size: Annotated[SizeArg, option("--input-size")] = None,
    resolution: Annotated[str | None, option("--resolution")] = None,
    batch_size: Annotated[int, option("--batch-size")] = 8,
    weights: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                 help="State dict for a timm model (.safetensors or torch).")] = None,
    layer: Annotated[str | None, typer.Option(help="Target layer (dotted path). Default: per architecture.")] = None,
    zero_absent: Annotated[bool, typer.Option(help="Zero maps of targets predicted absent (logit < 0).")] = False,
) -> None:
    """Compute CAMs for every image in a folder; write ``<stem>.npz`` maps and ``overlays/*.png``."""
    import numpy as np
    from rich.progress import track

    from dermx.explain.engine import CamEngine
    from dermx.explain.images import list_images, load_input, to_batch
    from dermx.explain.overlay import save_overlay

    net, own_size, mean, std, policy = load_model(model, weights)
    input_size, policy = input_size or own_size, resolution or policy
    specs = parse_targets(targets)
    if specs is None and not hasattr(net, "target_names"):
        raise typer.BadParameter("a plain classifier needs --targets (e.g. --targets 0,1)", param_hint="--targets")
    paths = list_images(images)
    try:
        engine = CamEngine(net, method, layer, zero_absent=zero_absent)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    batches = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]
    for batch_paths in track(batches, description=f"{engine.method.name} maps"):
        pixels = [load_input(path, input_size, policy) for path in batch_paths]
        try:
            result = engine(to_batch(pixels, mean, std), specs)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from error
        maps, logits = result.maps.cpu().numpy(), result.target_logits.cpu().numpy()
        for path, image, image_maps, image_logits in zip(batch_paths, pixels, maps, logits, strict=True):
            np.savez_compressed(out / f"{path.stem}.npz", maps=image_maps.astype(np.float32),
                                targets=np.array(result.labels), logits=image_logits, layer=result.layer)
            for label, cam in zip(result.labels, image_maps, strict=True):
                save_overlay(out / "overlays" / f"{path.stem}__{_file_label(label)}.png", image, cam)
    typer.echo(f"wrote maps for {len(paths)} images x {len(result.labels)} targets to {out}")
