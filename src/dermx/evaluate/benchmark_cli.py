"""``dermx evaluate``: benchmark models' diagnoses, characteristics and maps against the experts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dermx.cli_common import guarded, option, renamed


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
    if map_size not in ("input", "native"):
        raise typer.BadParameter(f"expected 'input' or 'native', got {map_size!r}", param_hint="--map-size")
    config = BenchmarkConfig(method=method, fusion=fusion, map_size=map_size, selection=selection,  # type: ignore[arg-type]
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
    if report:
        console.print(f"report: {render_report(out).resolve()}")


def register(app: typer.Typer) -> None:
    app.command("evaluate", cls=renamed({"--resolution": "--map-size"}))(evaluate_command)
