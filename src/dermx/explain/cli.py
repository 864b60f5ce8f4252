"""``dermx explain``: CAMs for a folder of images: ``OUT/<image stem>/maps.npz`` and ``<target>.png``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dermx.choices import ResolutionPolicy, ShardStrategy
from dermx.cli_common import SizeArg, guarded, is_checkpoint, option, refuse_flags, renamed

if TYPE_CHECKING:
    from dermx.explain.classifier import Classifier, ClassifierNet
    from dermx.explain.targets import TargetSpec
    from dermx.geometry import InputSpec


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


def named_classifier(spec: str, weights: Path | None, *, num_classes: int | None = None,
                     class_names: Path | None = None) -> Classifier:
    """The timm classifier ``--model NAME`` names (:func:`dermx.explain.classifier.load_classifier`), with
    usage errors naming the flag at fault (``--weights`` for the file, ``--model`` otherwise); shared by
    ``explain``, ``predict`` and ``serve``."""
    from dermx.explain.classifier import load_classifier, read_class_names
    from dermx.models.weights import WeightsError

    try:
        names = read_class_names(class_names) if class_names is not None else None
        return load_classifier(spec, weights, num_classes=num_classes, class_names=names)
    except WeightsError as error:
        raise typer.BadParameter(str(error), param_hint="--weights") from error
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--model") from error


def load_model(spec: str, weights: Path | None, *, num_classes: int | None = None,
               class_names: Path | None = None) -> tuple[Any, InputSpec, tuple[str, ...] | None]:
    """``(model, its input spec, class names)`` from a DermX checkpoint (folder or file) or a timm model
    name (:func:`named_classifier`; its spec squashes, as timm's evaluation does)."""
    from rich.console import Console

    if Path(spec).exists():
        from dermx.models import load_checkpoint

        model = load_checkpoint(Path(spec))
        return model.eval(), model.config.input_spec, None
    loaded = named_classifier(spec, weights, num_classes=num_classes, class_names=class_names)
    if weights is None:
        Console(stderr=True).print(f"[yellow]warning:[/] {spec} has random weights (pretrained=False); "
                                   "pass --weights FILE for meaningful maps")
    return loaded.model, loaded.spec, loaded.class_names


def predictable_model(spec: str, weights: Path | None, *, num_classes: int | None = None,
                      class_names: Path | None = None, threshold: float | None = None) -> Path | ClassifierNet:
    """What ``predict`` and ``serve`` hand the :class:`~dermx.predict.Predictor` for ``--model``: a dermx
    checkpoint's path, or the timm classifier it names with its ``--weights`` as a dx-only model
    (:class:`~dermx.explain.classifier.ClassifierNet`). Flags that do not apply are usage errors
    (:func:`~dermx.cli_common.is_checkpoint`; ``--threshold``, of characteristics, with a classifier)."""
    if is_checkpoint(spec, weights=weights, num_classes=num_classes, class_names=class_names,
                     weights_required=True):
        return Path(spec)
    refuse_flags({"--threshold": threshold}, "applies to a dermx model's characteristics; a timm classifier "
                                             "(--model NAME) has none")
    from dermx.explain.classifier import ClassifierNet

    return ClassifierNet(named_classifier(spec, weights, num_classes=num_classes, class_names=class_names), spec)


@guarded
def explain_command(
    model: Annotated[str, option("--model")],
    images: Annotated[Path, option("--images")],
    out: Annotated[Path, option("--out")],
    method: Annotated[str, option("--method")] = "gradcam",
    targets: Annotated[str | None, typer.Option(help="Comma-separated targets: index, name or head:name, or "
                                                     "'all'. Default: every output of every head of a DermX "
                                                     "model; each image's predicted class (--top-k) of a "
                                                     "plain classifier.")] = None,
    input_size: Annotated[SizeArg, option("--input-size")] = None,
    resolution: Annotated[ResolutionPolicy | None, option("--resolution")] = None,
    batch_size: Annotated[int, option("--batch-size")] = 8,
    device: Annotated[str, option("--device")] = "auto",
    precision: Annotated[str, option("--precision")] = "32",
    n_workers: Annotated[int | None, option("--n-workers", default="the cores available")] = None,
    weights: Annotated[Path | None, option("--weights")] = None,
    layer: Annotated[str | None, typer.Option(help="Target layer (dotted path). Default: per architecture.")] = None,
    zero_absent: Annotated[bool, typer.Option(help="Zero maps of targets predicted absent (logit < 0).")] = False,
    num_classes: Annotated[int | None, option("--n-classes")] = None,
    class_names: Annotated[Path | None, option("--class-names")] = None,
    top_k: Annotated[int | None, typer.Option(
        "--top-k", min=1, help="With --model NAME and without --targets: explain each image's K most probable "
                               "classes (default 1).")] = None,
    devices: Annotated[str, option("--devices")] = "1",
    num_nodes: Annotated[int, option("--num-nodes")] = 1,
    strategy: Annotated[str, option("--strategy", choices=ShardStrategy)] = "auto",
    resume: Annotated[bool, option("--resume")] = False,
) -> None:
    """Compute CAMs for every image in a folder (searched recursively; other files are listed as passed over).

    Writes OUT/<image stem>/<target>.png per target (the image beside the map overlay, a colour bar, the
    target and its probability in the title, padding added for the model input hatched) and one
    OUT/<image stem>/maps.npz: targets, maps (on the model input), probabilities, logits, method, layer
    and the image's placement in the input (original_size, resized_size, inside, visible). `dermx
    predict` writes the same layout and keys. Inputs that would share a folder (lesion.jpg, lesion.png)
    keep their suffix (OUT/lesion.jpg/).

    --device and --precision: where the model passes run and their autocast; maps, probabilities and
    logits are written as float32 whatever they are. --n-workers processes read the images.

    --devices N (--num-nodes M, --strategy ddp) shares the batches among N processes per machine; each
    writes its images' folders. --resume continues an interrupted run from the batches it had finished.
    """
    from dataclasses import replace

    from dermx.compute.cli import compute_of
    from dermx.compute.shards import SHARDS, Shards
    from dermx.data.images import IMAGE_SUFFIXES
    from dermx.explain.classifier import explain_top_k
    from dermx.explain.engine import CamEngine
    from dermx.explain.images import FramedImages
    from dermx.explain.inputs import collect
    from dermx.explain.outputs import write_image_outputs
    from dermx.explain.targets import target_probabilities
    from dermx.progress import track

    if is_checkpoint(model, weights=weights, num_classes=num_classes, class_names=class_names):
        refuse_flags({"--top-k": top_k}, "applies to a timm classifier (--model NAME) only: a dermx checkpoint "
                                         "explains every output of every head, or those --targets names")
    elif targets is not None:
        refuse_flags({"--top-k": top_k}, "applies only without --targets: it picks each image's most probable "
                                         "classes, where --targets names the classes to explain")
    top_k = top_k or 1
    compute = compute_of(device, precision, n_workers, devices=devices, num_nodes=num_nodes, strategy=strategy)
    net, own, names = load_model(model, weights, num_classes=num_classes, class_names=class_names)
    shards = Shards.launch(compute, out / SHARDS, resume=resume)
    shards.compute.place(net)
    fit = replace(own, size=input_size or own.size, policy=resolution or own.policy)
    specs = None if targets == "all" else parse_targets(targets)
    predicted = targets is None and not hasattr(net, "target_names")
    inputs = collect([images])
    if not inputs.images:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {images}"
                         + (f"; {len(inputs.skipped)} file(s) passed over" if inputs.skipped else ""))
    for name, why in inputs.skipped:
        typer.echo(f"passed over {name}: {why}", err=True)
    paths = [path for path, _ in inputs.images]
    folders = dict(inputs.images)
    try:
        engine = CamEngine(net, method, layer, zero_absent=zero_absent, class_names=names, precision=compute.precision)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    batches = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]

    def explain_batch(batch_paths: list[Path]) -> int:
        """Explain one batch and write its images' outputs; the number of targets per image."""
        ((batch, framed),) = FramedImages(batch_paths, fit).loader(batch_size, shards.compute)
        try:
            if predicted:
                top = explain_top_k(engine, batch, top_k)
                maps, logits, probabilities, labels = top.maps, top.logits, top.probabilities, top.labels
                used = top.layer
            else:
                result = engine(batch, specs)
                maps, logits, used = result.maps, result.target_logits, result.layer
                probabilities = target_probabilities(result.logits, result.targets)
                labels = [list(result.labels)] * len(framed)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from error
        maps_np, logits_np, probabilities_np = (t.detach().float().cpu().numpy() for t in (maps, logits, probabilities))
        for i, (path, (_, image, placement)) in enumerate(zip(batch_paths, framed, strict=True)):
            write_image_outputs(out / folders[path], image=image, placement=placement, input_size=fit.size,
                                labels=labels[i], maps=maps_np[i], probabilities=probabilities_np[i],
                                logits=logits_np[i], method=engine.method.name, layer=used)
        return len(labels[0])

    key = (model, str(weights), method, targets, fit, layer, zero_absent, top_k, [str(p) for p in paths], batch_size,
           compute.precision)
    counts = shards.map("explain", batches, explain_batch, key=key, description=f"{engine.method.name} maps",
                        progress=lambda it, label, total: track(it, label, total, disable=not shards.is_main))
    shards.finish()
    if not shards.is_main:
        return
    what = f"its top {top_k} class(es)" if predicted else f"{counts[-1]} targets"
    typer.echo(f"wrote maps for {len(paths)} images x {what} to {out}")
