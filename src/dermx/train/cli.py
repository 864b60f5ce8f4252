"""``dermx train`` and ``dermx cv``.

Options map one-to-one onto :class:`~dermx.train.TrainConfig` fields; a ``--config`` YAML/JSON file
gives defaults that options given on the command line override, and ``--recipe`` a named set of values
below both. Every option's Python default is ``None`` (not given); ``-h`` shows the configuration's
default and each recipe's value instead (:func:`shown_default`, :func:`showing_defaults`). Both
commands share one option list (:func:`_shared`); heavy imports happen inside the commands.
"""

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from dermx.choices import BottleneckMode, ResolutionPolicy, StoredMapSize
from dermx.cli_common import SizeArg, choice, guarded, option, renamed

Opt = typer.Option


def _shared(
    config: Annotated[Path | None, Opt("--config", help="YAML or JSON file of training options")] = None,
    recipe: Annotated[str | None, Opt(help="paper: the papers' fine-tuning of pretrained weights (the defaults) | "
                                          "small-data: values that learn from random weights on a few hundred "
                                          "images (each shown beside its default below); options given "
                                          "override the recipe's")] = None,
    data: Annotated[Path | None, option("--data")] = None,
    images: Annotated[Path | None, option("--images")] = None,
    labels: Annotated[Path | None, Opt(help="CSV of image,diagnosis[,patient_id] and optional 0/1 "
                                           "characteristic columns (SkinCon-style); any class names")] = None,
    aliases: Annotated[Path | None, option("--aliases")] = None,
    require_all_images: Annotated[bool | None, option("--require-all-images")] = None,
    kind: Annotated[str | None, Opt(help="dx-only | dermx | dermx+ | cbm (concept bottleneck: the diagnosis "
                                         "reads the characteristics only)")] = None,
    bottleneck: Annotated[str | None, Opt(
        metavar="joint|sequential|independent", parser=choice(BottleneckMode),
        help="cbm only: joint (one loss), sequential (diagnosis head fitted on the frozen characteristic "
             "predictions) or independent (on the training labels) (Koh et al. 2020)")] = None,
    head_interventions: Annotated[float | None, Opt(
        min=0.0, max=1.0, metavar="RATE",
        help="cbm sequential only: also fit the diagnosis head on 4 copies of the training images whose "
             "characteristics are each set to their label with this probability (random interventions)")] = None,
    first_stage: Annotated[Path | None, Opt(
        exists=True, file_okay=False, metavar="MODEL",
        help="cbm sequential or independent: take this trained dermx or dermx+ model's backbone and characteristic "
             "head as they are and fit only the diagnosis head (same data and split as it was trained on)")] = None,
    preset: Annotated[str | None, Opt(help="small | cpu | tiny | resnet50 | efficientnet_b2 | efficientnet_b4")] = None,
    backbone: Annotated[str | None, Opt(help="any timm backbone (overrides the preset's)")] = None,
    characteristics: Annotated[str | None, Opt(help="'paper' (10) or comma-separated names; default 16")] = None,
    pretrained: Annotated[bool | None, Opt("--pretrained/--no-pretrained", help=(
        "start from timm's published weights (from the local cache, else the hub); when they cannot be had, "
        "fail at once, naming the fixes"))] = None,
    backbone_weights: Annotated[Path | None, Opt(exists=True, dir_okay=False, help=(
        "local weight file to start the backbone from (timm, torchvision or safetensors; its classifier is "
        "ignored): pretrained weights offline"))] = None,
    random_fallback: Annotated[bool | None, Opt("--random-fallback", help=(
        "with --pretrained: when the published weights cannot be had, train from random weights (a "
        "warning, config.json and the model card say so) instead of failing"))] = None,
    epochs: Annotated[int | None, option("--epochs")] = None,
    batch_size: Annotated[int | None, option("--batch-size")] = None,
    lr: Annotated[float | None, Opt(help="peak learning rate of AdamW")] = None,
    weight_decay: Annotated[float | None, Opt(min=0.0, help="AdamW weight decay")] = None,
    lr_schedule: Annotated[str | None, Opt(help="restarts (the papers') | cosine (warm-up, one decay)")] = None,
    t0: Annotated[int | None, Opt("--t0", min=1, help="restarts: epochs of the first cosine period")] = None,
    t_mult: Annotated[int | None, Opt("--t-mult", min=1, help="restarts: each period this many times the "
                                      "last")] = None,
    eta_min: Annotated[float | None, Opt(min=0.0, help="learning rate at the bottom of each cosine")] = None,
    warmup_epochs: Annotated[float | None, Opt(help="linear lr warm-up epochs (cosine schedule)")] = None,
    char_pos_weight: Annotated[str | None, Opt(help="characteristic BCE pos_weight: balanced | a number")] = None,
    char_pos_weight_max: Annotated[float | None, Opt(min=1.0, help="balanced pos_weight clipped to [1, this]")
                                   ] = None,
    augment: Annotated[bool | None, Opt("--augment/--no-augment", help="flips / affine (/ colour jitter)")] = None,
    color_jitter: Annotated[bool | None, Opt("--color-jitter/--no-color-jitter",
                                             help="with --augment, also jitter colours")] = None,
    dropout: Annotated[float | None, Opt(help="dropout of the heads")] = None,
    char_weight: Annotated[float | None, Opt(min=0.0, help="λ_c of the characteristic loss in the total "
                                             "loss (cbm joint training varies it)")] = None,
    ga_weight: Annotated[float | None, Opt(help="λ of the guided-attention loss (dermx+: 10)")] = None,
    ga_alpha: Annotated[float | None, Opt(min=0.0, max=1.0, help="guided attention: weight α of the fuzzy "
                                          "sensitivity, 1 − α of the specificity")] = None,
    ga_smooth: Annotated[float | None, Opt(min=0.0, help="guided attention: the smoothing term of its "
                                          "sensitivity and specificity")
                         ] = None,
    ga_warmup_epochs: Annotated[float | None, Opt(min=0.0, help="guided attention: λ ramps from 0 over these "
                                                  "epochs")] = None,
    fusion: Annotated[str | None, option("--fusion")] = None,
    raters: Annotated[str | None, option("--raters")] = None,
    val_fraction: Annotated[float | None, Opt(min=0.0, max=1.0, help="share of the training side's patients "
                                              "that validate (selection, early stopping)")] = None,
    calibration_fraction: Annotated[float | None, Opt(
        min=0.0, max=0.95, help="share of the remaining training patients held out to fit the calibration only "
                                "(neither trains nor selects; 0: calibrate on the validation part)")] = None,
    label_rule: Annotated[str | None, Opt(help="characteristic labels: any | majority")] = None,
    resolution: Annotated[ResolutionPolicy | None, option("--resolution")] = None,
    input_size: Annotated[SizeArg, option("--input-size")] = None,
    output_stride: Annotated[int | None, Opt(help="backbone output stride 8 | 16 | 32: the CAM grid is about "
                                             "input / stride (default: the preset's)")] = None,
    cam_layer: Annotated[str | None, Opt(help="module whose Grad-CAM the attention loss shapes and explain "
                                         "uses, e.g. backbone.layer3 (default: the preset's, the last "
                                         "convolution block)")] = None,
    ga_resolution: Annotated[str | None, Opt(help="guided attention at the CAM grid ('features': expert maps "
                                             "area-averaged to it) or at the 'input' size (maps upsampled)")] = None,
    channels_last: Annotated[bool | None, Opt("--channels-last/--no-channels-last",
                                              help="NHWC tensors (faster on CPU for output stride 8)")] = None,
    seed: Annotated[int | None, option("--seed")] = None,
    deterministic: Annotated[bool | None, Opt("--deterministic/--no-deterministic",
                                              help="deterministic algorithms only (Lightning)")] = None,
    early_stopping: Annotated[int | None, Opt(help="patience in epochs (default: off)")] = None,
    monitor: Annotated[str | None, Opt(help="validation metric that selects the checkpoint (and stops early); "
                                       "a name ending in f1 is maximised, any other minimised")] = None,
    num_workers: Annotated[int | None, option("--n-workers")] = None,
    in_memory: Annotated[bool | None, Opt("--in-memory/--no-in-memory", help="keep decoded images")] = None,
    cache_dir: Annotated[Path | None, Opt(help="mask cache folder")] = None,
    out: Annotated[Path | None, option("--out")] = None,
    resume: Annotated[bool | None, option("--resume")] = None,
    accelerator: Annotated[str | None, Opt(help="Lightning accelerator: auto | cpu | gpu | ...")] = None,
    devices: Annotated[str | None, option("--devices")] = None,
    num_nodes: Annotated[int | None, option("--num-nodes")] = None,
    strategy: Annotated[str | None, option("--strategy")] = None,
    precision: Annotated[str | None, option("--precision")] = None,
    log_every_n_steps: Annotated[int | None, Opt(min=1, help="training steps between log rows (Lightning)")
                                 ] = None,
    progress: Annotated[bool | None, Opt("--progress/--no-progress", help="show training progress")] = None,
) -> None:
    """The options shared by ``train`` and ``cv`` (a signature only)."""


def shown_default(name: str, *, switch: bool = True) -> str | None:
    """What ``-h`` shows as the default of training option ``name``: the :class:`~dermx.train.TrainConfig`
    default, and each recipe's own value beside it (``None``: nothing to show). A boolean shows as the
    flag that is in effect (``--no-augment``), or, without a ``--no-`` form (``switch=False``), on / off."""
    from dermx.train.config import RECIPES, TrainConfig

    def text(value: Any) -> str:
        if isinstance(value, bool):
            return f"--{'' if value else 'no-'}{name.replace('_', '-')}" if switch else ("on" if value else "off")
        return "none" if value is None else str(value)

    if name == "recipe":
        return "paper"
    defaults = TrainConfig.of().to_dict()
    section = next((values for values in defaults.values() if name in values), None)
    if section is None:
        return None
    default = section[name]
    recipes = [f"--recipe {recipe}: {text(values[name])}" for recipe, values in RECIPES.items() if name in values]
    return "; ".join([text(default), *recipes]) if default is not None or recipes else None


def showing_defaults(base: type[TyperCommand]) -> type[TyperCommand]:
    """``base`` whose ``-h`` shows :func:`shown_default` for each option (their Python default is ``None``,
    so that a config file's value is not overridden by an option not given). Computed when help is
    shown: the configuration imports PyTorch, which ``import dermx.cli`` must not."""

    class ShowingDefaults(base):  # type: ignore[valid-type, misc]
        def format_help(self, ctx: typer.Context, formatter: Any) -> None:
            for param in self.params:
                shown = shown_default(str(param.name), switch=bool(getattr(param, "secondary_opts", None)))
                if shown is not None:
                    param.show_default = shown
            super().format_help(ctx, formatter)

    return ShowingDefaults


def _config(options: dict[str, Any]) -> Any:
    from dermx.train.config import load_config

    given = {k: str(v) if isinstance(v, Path) else v for k, v in options.items() if v is not None}
    if given.get("char_pos_weight", "balanced") != "balanced":
        given["char_pos_weight"] = float(given["char_pos_weight"])
    if "raters" in given:
        given["raters"] = [r.strip() for r in given["raters"].split(",") if r.strip()]
    return load_config(given.pop("config", None), **given)


def _command(run: Callable[..., None], own: Callable[..., None]) -> Callable[..., None]:
    """``run(options)`` exposed with the shared options plus the parameters of ``own``."""

    @guarded
    def command(**options: Any) -> None:
        run(options)

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
    method: Annotated[str, option("--method")] = "gradcam",
    map_size: Annotated[str, option("--map-size", choices=StoredMapSize)] = "features",
    maps: Annotated[bool, Opt("--maps/--no-maps", help="write the test images' maps (features: small files; "
                              "input: at the model input size)")] = True,
) -> None:
    """Parameters of ``cv`` beyond the shared ones."""


def _train(options: dict[str, Any]) -> None:
    """Train one dx-only, DermX or DermX+ model; write a shareable checkpoint."""
    from dermx.train.fitting import fit
    from dermx.train.provenance import shown_epoch
    from dermx.train.quiet import quiet_training

    with quiet_training():
        result = fit(_config(options))
    epoch = shown_epoch(result.metrics)
    typer.echo(f"checkpoint: {result.checkpoint_dir}" + (f" (epoch {epoch})" if epoch is not None else ""))
    for name, value in sorted(result.metrics.items()):
        if name != "epoch":
            typer.echo(f"  {name} = {value:.4f}")


def _cv(options: dict[str, Any]) -> None:
    """Cross-validate over patient-grouped folds: per-fold checkpoints, test predictions and test maps."""
    import pandas as pd
    from rich.console import Console

    from dermx.train.cv import fold_table, run_cv
    from dermx.train.quiet import quiet_training

    folds = options.pop("folds", None)
    chosen = [int(k) for k in folds.split(",") if k.strip()] if folds else None
    method, map_size, maps = options.pop("method"), options.pop("map_size"), options.pop("maps")
    with quiet_training():
        result = run_cv(_config(options), chosen, maps_method=method if maps else "none", maps_size=map_size)
    Console().print(fold_table(pd.read_csv(result.summary)))
    typer.echo(f"predictions: {result.predictions}\nsummary: {result.summary}")
    for path in result.maps.values():
        typer.echo(f"maps: {path}")


#: Flags of ``train`` and ``cv`` renamed in this release (read with a note for one more release).
RENAMED = {"--weights": "--backbone-weights", "--num-workers": "--n-workers"}


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``cv`` to the ``dermx`` command."""
    app.command("train", cls=showing_defaults(renamed(RENAMED)))(_command(_train, _train_own))
    app.command("cv", cls=showing_defaults(renamed({**RENAMED, "--maps-method": "--method",
                                                    "--maps-size": "--map-size"})))(_command(_cv, _cv_own))
