"""``dermx evaluate``: benchmark models' diagnoses, characteristics and maps against the experts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dermx.evaluate.leaderboard_cli import parse_protocol


def evaluate_command(
    data: Annotated[Path, typer.Option("--data", help="DermXDB (or synthetic) folder.")],
    images: Annotated[Path, typer.Option("--images", help="Image folder.")],
    model: Annotated[list[str], typer.Option(
        "--model", help="NAME=PATH of a checkpoint, training run or `dermx cv` folder; repeatable.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder for the tables, summary.json and examples.")],
    method: Annotated[str, typer.Option(help="CAM method.")] = "gradcam",
    fusion: Annotated[str, typer.Option(help="Fusion rule of the expert maps: mean | relative | any | ...")] = "mean",
    resolution: Annotated[str, typer.Option(help="Compare maps at the model 'input' or 'native' size.")] = "input",
    selection: Annotated[str, typer.Option(help="Headline pairs: present | predicted | correct.")] = "present",
    threshold: Annotated[float, typer.Option(help="Characteristic present when p >= threshold.")] = 0.5,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option()] = 0,
    agreement: Annotated[bool, typer.Option(help="Score the rater-agreement ceiling too.")] = True,
    report: Annotated[bool, typer.Option(help="Write report.html as well.")] = True,
    methods: Annotated[str | None, typer.Option("--methods", help="Also write RUN/leaderboard.csv for these "
                                                "CAM methods (comma-separated, or 'all').")] = None,
    protocol: Annotated[str, typer.Option("--protocol", parser=parse_protocol, metavar="dermx|followup",
                                          help="Leaderboard agreement protocol (followup: Jalaboi et al. "
                                          "2023).")] = "dermx",
    n_images: Annotated[int, typer.Option("--n-images", min=1, help="Leaderboard: test images per model for "
                                          "faithfulness, sanity and robustness.")] = 16,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Leaderboard: deletion/insertion steps.")] = 8,
) -> None:
    """Explain and score every model on its test images; write the run folder (and the report)."""
    from rich.console import Console
    from rich.progress import Progress

    from dermx.data import load_dermxdb
    from dermx.evaluate.bench_types import BenchmarkConfig
    from dermx.evaluate.benchmark import run_benchmark, write_benchmark
    from dermx.evaluate.candidates import load_candidates
    from dermx.report import build_manifest, render_report, write_manifest
    from dermx.report.terminal import headline_table

    console = Console()
    pairs = [m.split("=", 1) if "=" in m else [Path(m).name, m] for m in model]
    config = BenchmarkConfig(method=method, fusion=fusion, resolution=resolution, selection=selection,  # type: ignore[arg-type]
                             threshold=threshold, n_boot=n_boot, seed=seed, agreement=agreement)
    db = load_dermxdb(data, image_dir=images, check_mask_sizes=False)
    candidates = [c for name, path in pairs for c in load_candidates(name, path, db, config)]
    with Progress(console=console) as bar:
        result = run_benchmark(db, candidates, config,
                               progress=lambda it, label, total: bar.track(it, total=total, description=label))
    for path in write_benchmark(result, out):
        console.print(f"wrote {path}")
    write_manifest(build_manifest(config={"benchmark": config.to_dict(), "models": dict(pairs)},
                                  seeds={"bootstrap": seed}, data_root=data), out)
    console.print(headline_table(result.summary))
    if methods:
        from dermx.evaluate.leaderboard_cli import write_run_leaderboard

        for path in write_run_leaderboard(db, pairs, methods, out, protocol=protocol, n_images=n_images,
                                          steps=steps, n_boot=n_boot, seed=seed, threshold=threshold):
            console.print(f"wrote {path}")
    if report:
        console.print(f"report: {render_report(out).resolve()}")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)
