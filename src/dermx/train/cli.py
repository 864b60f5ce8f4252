"""``dermx train`` and ``dermx cv``.

Options map one-to-one onto :class:`~dermx.train.TrainConfig` fields; a ``--config`` YAML/JSON file
gives defaults that options given on the command line override. Both commands share one option list
(:func:`_shared`); heavy imports happen inside the commands.
"""

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

Opt = typer.Option


def _shared(
    config: Annotated[Path | None, Opt("--config", help="YAML or JSON file of training options")] = None,
    data: Annotated[Path | None, Opt(help="DermXDB folder")] = None,
    images: Annotated[Path | None, Opt(help="image folder (DermXDB images, or class sub-folders)")] = None,
    labels: Annotated[Path | None, Opt(help="CSV of path,diagnosis[,patient_id] (dx-only)")] = None,
    kind: Annotated[str | None, Opt(help="dx-only | dermx | dermx+")] = None,
    preset: Annotated[str | None, Opt(help="small | cpu | tiny | resnet50 | efficientnet_b2 | efficientnet_b4")] = None,
    backbone: Annotated[str | None, Opt(help="any timm backbone (overrides the preset's)")] = None,
    characteristics: Annotated[str | None, Opt(help="'paper' (10) or comma-separated names; default 16")] = None,
    weights: Annotated[Path | None, Opt(help="local backbone weight file (offline pretrained)")] = None,
    pretrained: Annotated[bool | None, Opt("--pretrained/--no-pretrained")] = None,
    epochs: Annotated[int | None, Opt()] = None,
    batch_size: Annotated[int | None, Opt()] = None,
    lr: Annotated[float | None, Opt()] = None,
    lr_schedule: Annotated[str | None, Opt(help="restarts (the papers') | cosine (warm-up, one decay)")] = None,
    warmup_epochs: Annotated[float | None, Opt(help="linear lr warm-up epochs (cosine schedule)")] = None,
    char_pos_weight: Annotated[str | None, Opt(help="characteristic BCE pos_weight: balanced | a number")] = None,
    augment: Annotated[bool | None, Opt("--augment/--no-augment", help="flips / affine (/ colour jitter)")] = None,
    color_jitter: Annotated[bool | None, Opt("--color-jitter/--no-color-jitter")] = None,
    dropout: Annotated[float | None, Opt()] = None,
    ga_weight: Annotated[float | None, Opt(help="λ of the guided-attention loss (dermx+: 10)")] = None,
    fusion: Annotated[str | None, Opt(help="reference maps: mean | relative")] = None,
    label_rule: Annotated[str | None, Opt(help="characteristic labels: any | majority")] = None,
    resolution: Annotated[str | None, Opt(help="pad | crop | squash")] = None,
    input_size: Annotated[int | None, Opt(help="square input size in pixels (default: the preset's)")] = None,
    output_stride: Annotated[int | None, Opt(help="backbone output stride 8 | 16 | 32: the CAM grid is about "
                                             "input / stride (default: the preset's)")] = None,
    ga_resolution: Annotated[str | None, Opt(help="guided attention at the CAM grid ('features': expert maps "
                                             "area-averaged to it) or at the 'input' size (maps upsampled)")] = None,
    channels_last: Annotated[bool | None, Opt("--channels-last/--no-channels-last",
                                              help="NHWC tensors (faster on CPU for output stride 8)")] = None,
    seed: Annotated[int | None, Opt()] = None,
    deterministic: Annotated[bool | None, Opt("--deterministic/--no-deterministic")] = None,
    early_stopping: Annotated[int | None, Opt(help="patience in epochs")] = None,
    num_workers: Annotated[int | None, Opt()] = None,
    in_memory: Annotated[bool | None, Opt("--in-memory/--no-in-memory", help="keep decoded images")] = None,
    cache_dir: Annotated[Path | None, Opt(help="mask cache folder")] = None,
    out: Annotated[Path | None, Opt(help="run folder")] = None,
    resume: Annotated[bool | None, Opt("--resume/--no-resume", help="continue from the last checkpoint")] = None,
    accelerator: Annotated[str | None, Opt()] = None,
    devices: Annotated[str | None, Opt()] = None,
    num_nodes: Annotated[int | None, Opt("--num-nodes")] = None,
    strategy: Annotated[str | None, Opt()] = None,
    precision: Annotated[str | None, Opt()] = None,
    progress: Annotated[bool | None, Opt("--progress/--no-progress")] = None,
) -> None:
    """The options shared by ``train`` and ``cv`` (a signature only)."""


def _config(options: dict[str, Any]) -> Any:
    from dermx.train.config import load_config

    given = {k: str(v) if isinstance(v, Path) else v for k, v in options.items() if v is not None}
    if given.get("char_pos_weight", "balanced") != "balanced":
        given["char_pos_weight"] = float(given["char_pos_weight"])
    if "input_size" in given:
        given["input_size"] = (given["input_size"], given["input_size"])
    return load_config(given.pop("config", None), **given)


def _command(run: Callable[..., None], own: Callable[..., None]) -> Callable[..., None]:
    """``run(options)`` exposed with the shared options plus the parameters of ``own``."""

    def command(**options: Any) -> None:
        from dermx.data import DermXDBError
        from dermx.models import CheckpointError, WeightsError

        try:
            run(options)
        except (DermXDBError, CheckpointError, WeightsError, FileNotFoundError, ValueError) as error:
            typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=2) from error

    parameters = [*inspect.signature(own).parameters.values(), *inspect.signature(_shared).parameters.values()]
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__doc__ = run.__doc__
    return command


def _train_own(
    fold: Annotated[int | None, Opt(help="train on this fold's training part; its test part is predicted")] = None,
) -> None:
    """Parameters of ``train`` beyond the shared ones."""


def _cv_own(
    folds: Annotated[str | None, Opt(help="comma-separated folds (default: all)")] = None,
    n_folds: Annotated[int | None, Opt("--n-folds", help="K for image collections (default 10)")] = None,
    maps_method: Annotated[str, Opt("--maps-method", help="CAM method of the test maps: gradcam | gradcam++ | "
                                    "xgradcam | hirescam | layercam | cam | scorecam | eigencam | none")] = "gradcam",
    maps_size: Annotated[str, Opt("--maps-size", help="test maps at the CAM feature grid ('features', small "
                                  "files) or at the model 'input' size")] = "features",
) -> None:
    """Parameters of ``cv`` beyond the shared ones."""


def _train(options: dict[str, Any]) -> None:
    """Train one dx-only, DermX or DermX+ model; write a shareable checkpoint."""
    from dermx.train.fitting import fit

    result = fit(_config(options))
    typer.echo(f"checkpoint: {result.checkpoint_dir}")
    for name, value in sorted(result.metrics.items()):
        typer.echo(f"  {name} = {value:.4f}")


def _cv(options: dict[str, Any]) -> None:
    """Cross-validate over patient-grouped folds: per-fold checkpoints, test predictions and test maps."""
    import pandas as pd
    from rich.console import Console

    from dermx.train.cv import fold_table, run_cv

    folds = options.pop("folds", None)
    chosen = [int(k) for k in folds.split(",") if k.strip()] if folds else None
    maps_method, maps_size = options.pop("maps_method", "gradcam"), options.pop("maps_size", "features")
    result = run_cv(_config(options), chosen, maps_method=maps_method, maps_size=maps_size)
    Console().print(fold_table(pd.read_csv(result.summary)))
    typer.echo(f"predictions: {result.predictions}\nsummary: {result.summary}")
    for path in result.maps.values():
        typer.echo(f"maps: {path}")


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``cv`` to the ``dermx`` command."""
    app.command("train")(_command(_train, _train_own))
    app.command("cv")(_command(_cv, _cv_own))
