"""``dermx evaluate``: benchmark models' diagnoses, characteristics and maps against the experts
(:func:`dermx.evaluate.pipeline.run_evaluation`), then render the report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dermx.choices import EvalMapSize, Protocol, Selection, ShardStrategy
from dermx.cli_common import choice, guarded, metavar, only_with, option, renamed

_SELECTION, _PROTOCOL = choice(Selection), choice(Protocol)
#: Leaderboard settings: each has an effect only with --methods.
LEADERBOARD_FLAGS: dict[str, str] = {"protocol": "--protocol", "n_faithfulness_images": "--n-faithfulness-images",
                                     "n_scorecam_images": "--n-scorecam-images", "steps": "--n-steps"}


def parse_methods_option(text: str | None) -> tuple[str, ...] | None:
    """``--methods``: ``all`` or a comma-separated list of CAM methods, checked before any work."""
    from dermx.evaluate.leaderboard.config import parse_methods

    if text is None or isinstance(text, tuple):
        return text
    try:
        return parse_methods(text)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error


def parse_image_count(text: str | int | None) -> int | None:
    """``--n-scorecam-images``: a positive count, or ``all`` (``None``: every test image)."""
    if text is None or str(text).strip().lower() == "all":
        return None
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise typer.BadParameter(f"expected a positive number of images or 'all'; got {text!r}")
    return count


def parse_models(values: list[str]) -> list[tuple[str, Path]]:
    """``NAME=PATH`` (or a bare ``PATH``, named after its folder) → (name, path); names must differ."""
    pairs = [(name, Path(path)) for name, path in (v.split("=", 1) if "=" in v else (Path(v).name, v) for v in values)]
    names = [name for name, _ in pairs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise typer.BadParameter(f"model name(s) {', '.join(twice)} given twice; name each model once (NAME=PATH)",
                                 param_hint="--candidate")
    for name, path in pairs:
        if not name.strip():
            raise typer.BadParameter(f"empty model name in {name}={path}", param_hint="--candidate")
        if not path.exists():
            raise typer.BadParameter(f"{path}: no such checkpoint, run or cv folder", param_hint="--candidate")
    return pairs


@guarded
def evaluate_command(
    ctx: typer.Context,
    data: Annotated[Path, option("--data")],
    images: Annotated[Path, option("--images")],
    model: Annotated[list[str], typer.Option(
        "--candidate", help="NAME=PATH of a model to score: a checkpoint, training run or `dermx cv` folder, "
                            "under NAME in every table; repeatable (each one a candidate).")],
    out: Annotated[Path, option("--out")],
    method: Annotated[str, option("--method")] = "gradcam",
    fusion: Annotated[str, option("--fusion")] = "mean",
    map_size: Annotated[str, option("--map-size", choices=EvalMapSize)] = "input",
    selection: Annotated[str, typer.Option(parser=_SELECTION, metavar=metavar(_SELECTION),
                                           help="Headline pairs.")] = "present",
    threshold: Annotated[float, option("--threshold")] = 0.5,
    device: Annotated[str, option("--device")] = "auto",
    precision: Annotated[str, option("--precision")] = "32",
    n_workers: Annotated[int | None, option("--n-workers", default="the cores available")] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", min=1, help="Bootstrap resamples.")] = 1000,
    seed: Annotated[int, option("--seed")] = 0,
    agreement: Annotated[bool, typer.Option(help="Score the rater-agreement ceiling too.")] = True,
    report: Annotated[bool, typer.Option(help="Write report.html as well.")] = True,
    allow_overlap: Annotated[bool, typer.Option(
        "--allow-overlap", help="Score a model even when its training images cannot be told apart from the "
                                "test images (they may overlap).")] = False,
    aliases: Annotated[Path | None, option("--aliases")] = None,
    raters: Annotated[str | None, option("--raters")] = None,
    require_all_images: Annotated[bool, option("--require-all-images")] = False,
    groups: Annotated[Path | None, typer.Option(
        "--groups", exists=True, dir_okay=False, metavar="FILE",
        help="CSV of two columns, image (stem or file name) and an attribute named by its header (e.g. "
             "image,fitzpatrick): the trust figures and the leaderboard's deletion AUC are per value of that "
             "attribute instead of DermXDB's skin tone; test images it lacks are grouped as 'unknown'.")] = None,
    methods: Annotated[Any, typer.Option(
        "--methods", parser=parse_methods_option, metavar="all|M1,M2,...",
        help="Also write RUN/leaderboard.csv for these CAM methods (comma-separated, or 'all').")] = None,
    protocol: Annotated[str, typer.Option(
        "--protocol", parser=_PROTOCOL, metavar=metavar(_PROTOCOL),
        help="Leaderboard agreement protocol (followup: Jalaboi et al. 2023).")] = "dermx",
    n_faithfulness_images: Annotated[int, typer.Option(
        "--n-faithfulness-images", min=1,
        help="Leaderboard: faithfulness, sanity and robustness on the first N test images (sorted names).")] = 16,
    n_scorecam_images: Annotated[Any, typer.Option(
        "--n-scorecam-images", parser=parse_image_count, metavar="N|all",
        help="Leaderboard: Score-CAM's agreement on the first N test images (sorted names) or all; it needs one "
             "forward pass per channel of the CAM layer per image.")] = "64",
    steps: Annotated[int, typer.Option("--n-steps", min=1, help="Leaderboard: deletion/insertion steps.")] = 8,
    interventions: Annotated[bool, option("--interventions")] = False,
    intervention_draws: Annotated[int, typer.Option(
        "--n-intervention-draws", min=1,
        help="With --interventions: random orders and shuffles drawn (their F1 averaged).")] = 20,
    devices: Annotated[str, option("--devices")] = "1",
    num_nodes: Annotated[int, option("--num-nodes")] = 1,
    strategy: Annotated[str, option("--strategy", choices=ShardStrategy)] = "auto",
    resume: Annotated[bool, option("--resume")] = False,
) -> None:
    """Explain and score every model on its test images; write the run folder (and the report).

    With --methods, also the method × model leaderboard (RUN/leaderboard.csv): agreement on every test
    image (Score-CAM: on --n-scorecam-images), faithfulness, sanity and robustness on
    --n-faithfulness-images test images per model with --n-steps deletion/insertion steps.

    --raters names the raters whose outlines make the references and the raters' ceiling; name raters
    the models did not learn from (`dermx train` with the others) for a held-out-raters protocol.

    --groups FILE groups the images by your own attribute (a CSV image,ATTRIBUTE; skin tone by default) in
    the report's trust section and summary.json's groups, calibration, conformal and selective keys.

    --interventions adds summary.json's interventions key, RUN/interventions.csv and the report's section
    "Clinician in the loop": for every model with characteristics and an intervention rule, diagnosis macro F1
    after correcting 0, 1, ... of its characteristics to the raters' majority labels, and with them replaced
    by a constant or shuffled across images; models that cannot be measured are listed with the reason.

    --devices N (--num-nodes M, --strategy ddp) shares the images among N processes per machine, as
    training does: each scores its share of the batches (leaderboard: of the model folds) into RUN/.shards/,
    and the first merges them and computes every statistic, with the rows and intervals of a one-process
    run. --resume continues an interrupted run from the batches and folds it had finished.
    """
    only_with(ctx, "--methods", methods is not None, LEADERBOARD_FLAGS)
    only_with(ctx, "--interventions", interventions, {"intervention_draws": "--n-intervention-draws"})
    pairs = parse_models(model)
    import dataclasses

    from dermx.compute.cli import compute_of
    from dermx.evaluate.image_groups import read_groups

    compute = compute_of(device, precision, n_workers, devices=devices, num_nodes=num_nodes, strategy=strategy)

    image_groups = read_groups(groups) if groups is not None else None  # a broken file fails before any work

    from rich.console import Console

    from dermx.compute.shards import SHARDS, Shards
    from dermx.data import load_dermxdb
    from dermx.evaluate.benchmark.config import BenchmarkConfig
    from dermx.evaluate.leaderboard.config import LeaderboardConfig
    from dermx.evaluate.leaderboard_cli import print_leaderboard_problems
    from dermx.evaluate.pipeline import run_evaluation
    from dermx.progress import progress
    from dermx.report import render_report
    from dermx.report.terminal import headline_table
    from dermx.vocab_map import read_aliases

    console = Console()
    benchmark = BenchmarkConfig(method=method, fusion=fusion, map_size=map_size, selection=selection,  # type: ignore[arg-type]
                                threshold=threshold, n_boot=n_boot, seed=seed, agreement=agreement,
                                interventions=interventions, intervention_draws=intervention_draws)
    leaderboard = (LeaderboardConfig(methods=methods, protocol=protocol, n_images=n_faithfulness_images,  # type: ignore[arg-type]
                                     score_images=n_scorecam_images, steps=steps, n_boot=n_boot, seed=seed,
                                     threshold=threshold) if methods is not None else None)
    db = load_dermxdb(data, image_dir=images, check_mask_sizes=False)
    if raters:
        benchmark = dataclasses.replace(benchmark, raters=tuple(db.select_annotators(
            [r.strip() for r in raters.split(",")])))
    shards = Shards.launch(compute, out / SHARDS,
                           resume=resume)
    with progress(console, disable=not shards.is_main) as bar:
        evaluation = run_evaluation(
            db, pairs, out, benchmark=benchmark, leaderboard=leaderboard,
            aliases=read_aliases(aliases) if aliases else None, allow_overlap=allow_overlap,
            require_all_images=require_all_images,
            manifest={"aliases": aliases.name if aliases else None}, groups=image_groups,
            say=lambda line: bar.console.print(line, highlight=False),
            progress=lambda it, label, total: bar.track(it, total=total, description=label), shards=shards)
    if not shards.is_main:
        return
    for path in evaluation.written:
        console.print(f"wrote {path}", highlight=False)
    console.print(headline_table(evaluation.benchmark.summary))
    if evaluation.leaderboard is not None:
        print_leaderboard_problems(console, evaluation.leaderboard.excluded, evaluation.leaderboard.undefined)
    if report:
        console.print(f"report: {render_report(out).resolve()}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("evaluate", cls=renamed({"--model": "--candidate", "--steps": "--n-steps"}))(evaluate_command)
