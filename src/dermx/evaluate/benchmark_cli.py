"""``dermx evaluate``: benchmark models' diagnoses, characteristics and maps against the experts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dermx.cli_common import guarded, option, renamed
from dermx.evaluate.leaderboard_cli import parse_image_count, parse_protocol


@guarded
def evaluate_command(
    data: Annotated[Path, option("--data")],
    images: Annotated[Path, option("--images")],
    model: Annotated[list[str], typer.Option(
        "--model", help="NAME=PATH of a checkpoint, training run or `dermx cv` folder; repeatable.")],
    out: Annotated[Path, option("--out")],
    method: Annotated[str, option("--method")] = "gradcam",
    fusion: Annotated[str, typer.Option(help="Fusion rule of the expert maps: mean | relative | any | ...")] = "mean",
    map_size: Annotated[str, option("--map-size")] = "input",
    selection: Annotated[str, typer.Option(help="Headline pairs: present | predicted | correct.")] = "present",
    threshold: Annotated[float, option("--threshold")] = 0.5,
    n_boot: Annotated[int, typer.Option("--n-boot", min=1, help="Bootstrap resamples.")] = 1000,
    seed: Annotated[int, option("--seed")] = 0,
    agreement: Annotated[bool, typer.Option(help="Score the rater-agreement ceiling too.")] = True,
    report: Annotated[bool, typer.Option(help="Write report.html as well.")] = True,
    allow_overlap: Annotated[bool, typer.Option(
        "--allow-overlap", help="Score a model even when its training images cannot be told apart from the "
                                "test images (they may overlap).")] = False,
    aliases: Annotated[Path | None, option("--aliases")] = None,
    require_all_images: Annotated[bool, typer.Option(
        "--require-all-images", help="Fail when the image folder lacks any DermXDB image (default: go on "
                                     "with the images found, list the missing ones in the run folder).")] = False,
    methods: Annotated[str | None, typer.Option("--methods", help="Also write RUN/leaderboard.csv for these "
                                                "CAM methods (comma-separated, or 'all').")] = None,
    protocol: Annotated[str, typer.Option("--protocol", parser=parse_protocol, metavar="dermx|followup",
                                          help="Leaderboard agreement protocol (followup: Jalaboi et al. "
                                          "2023).")] = "dermx",
    n_images: Annotated[int, option("--n-images")] = 16,
    n_scorecam_images: Annotated[int | None, typer.Option(
        "--n-scorecam-images", parser=parse_image_count, metavar="N|all",
        help="Leaderboard: Score-CAM's agreement on the first N test images (sorted names) or all; it needs one "
             "forward pass per channel of the CAM layer per image.")] = 64,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Leaderboard: deletion/insertion steps.")] = 8,
) -> None:
    """Explain and score every model on its test images; write the run folder (and the report).

    With --methods, also the method × model leaderboard (RUN/leaderboard.csv): agreement on every test
    image (Score-CAM: on --n-scorecam-images), faithfulness, sanity and robustness on --n-images test
    images per model with --steps deletion/insertion steps.
    """
    from rich.console import Console

    from dermx.data import load_dermxdb
    from dermx.data.coverage import image_coverage
    from dermx.evaluate.bench_types import BenchmarkConfig
    from dermx.evaluate.benchmark import run_benchmark, write_benchmark
    from dermx.evaluate.candidates import load_candidates
    from dermx.progress import progress
    from dermx.report import build_manifest, render_report, write_manifest
    from dermx.report.terminal import headline_table
    from dermx.train.provenance import dermxdb_identity
    from dermx.vocab_map import read_aliases

    console = Console()
    pairs = [m.split("=", 1) if "=" in m else [Path(m).name, m] for m in model]
    if map_size not in ("input", "native"):
        raise typer.BadParameter(f"expected 'input' or 'native', got {map_size!r}", param_hint="--map-size")
    config = BenchmarkConfig(method=method, fusion=fusion, map_size=map_size, selection=selection,  # type: ignore[arg-type]
                             threshold=threshold, n_boot=n_boot, seed=seed, agreement=agreement)
    names = read_aliases(aliases) if aliases else None
    db = load_dermxdb(data, image_dir=images, check_mask_sizes=False)
    coverage = image_coverage(db)
    console.print(coverage.message())
    if require_all_images or not coverage.found:
        coverage.require_all()
    identity = dermxdb_identity(db)
    candidates = [c for name, path in pairs for c in load_candidates(
        name, path, db, config, available=coverage.found, allow_overlap=allow_overlap, identity=identity,
        aliases=names)]
    for candidate in candidates:
        fold = f" fold {candidate.fold}" if candidate.fold is not None else ""
        console.print(f"{candidate.name}{fold}: {len(candidate.stems)} test images "
                      f"({candidate.test_set['description']})", highlight=False)
    missing = coverage.write_missing(out)
    with progress(console) as bar:
        result = run_benchmark(db, candidates, config, out=out,
                               progress=lambda it, label, total: bar.track(it, total=total, description=label))
    result.summary["image_folder"] = coverage.to_dict()
    if missing:
        console.print(f"wrote {missing}")
    for path in write_benchmark(result, out):
        console.print(f"wrote {path}")
    write_manifest(build_manifest(config={"benchmark": config.to_dict(), "models": dict(pairs),
                                          "aliases": str(aliases) if aliases else None},
                                  seeds={"bootstrap": seed}, data_root=data), out)
    console.print(headline_table(result.summary))
    if methods:
        from dermx.evaluate.leaderboard_cli import write_run_leaderboard

        for path in write_run_leaderboard(db, pairs, methods, out, protocol=protocol, n_images=n_images,
                                          n_scorecam_images=n_scorecam_images, steps=steps, n_boot=n_boot,
                                          seed=seed, threshold=threshold, available=coverage.found,
                                          allow_overlap=allow_overlap, aliases=names):
            console.print(f"wrote {path}")
    if report:
        console.print(f"report: {render_report(out).resolve()}")


def register(app: typer.Typer) -> None:
    app.command("evaluate", cls=renamed({"--resolution": "--map-size"}))(evaluate_command)
