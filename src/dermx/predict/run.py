"""The work behind ``dermx predict`` (kept out of ``cli.py`` so ``dermx --help`` stays fast)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from dermx.data import DermXDBError
from dermx.models import CheckpointError
from dermx.predict.files import collect, output_dir, write_outputs
from dermx.predict.predictor import Predictor, PreparedImage
from dermx.predict.result import Prediction


def _table(prediction: Prediction) -> Table:
    table = Table(title=prediction.source, title_justify="left", show_header=True)
    table.add_column("diagnosis")
    table.add_column("p", justify="right")
    table.add_column("present characteristic")
    table.add_column("p", justify="right")
    present = [c for c in prediction.characteristics if c.present]
    for row in range(max(3, len(present))):
        dx = prediction.diagnoses[row] if row < 3 else ("", None)
        ch = present[row] if row < len(present) else None
        table.add_row(dx[0], "" if dx[1] is None else f"{dx[1]:.3f}",
                      ch.name if ch else "", f"{ch.probability:.3f}" if ch else "")
    return table


def run_predict(images: list[Path], *, model: Path, out: Path | None, as_json: bool, threshold: float,
                method: str, batch_size: int, resolution: str | None) -> int:
    """Predict every image; returns the exit code (0, or 1 when any input was skipped or unreadable)."""
    err = Console(stderr=True)
    try:
        predictor = Predictor(model, method=method, threshold=threshold, resolution=resolution,  # type: ignore[arg-type]
                              batch_size=batch_size)
    except (CheckpointError, ValueError) as error:
        err.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True)  # one line, however long
        return 2
    inputs = collect(images)
    skipped = list(inputs.skipped)
    results: list[dict[str, Any]] = []
    out_console = Console()
    batch: list[tuple[PreparedImage, str]] = []

    def flush() -> None:
        for (item, name), prediction in zip(batch, predictor.run([p for p, _ in batch]), strict=True):
            record = prediction.to_dict()
            if out is not None:
                directory = output_dir(out, name)
                record["files"] = [str(directory / f) for f in write_outputs(prediction, item.image, directory)]
            results.append(record)
            if not as_json:
                out_console.print(_table(prediction))
        batch.clear()

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, disable=len(inputs.images) < 2, transient=True) as progress:
        task = progress.add_task("predicting", total=len(inputs.images))
        for path, name in inputs.images:
            try:
                batch.append((predictor.prepare(path), name))
            except DermXDBError as error:
                skipped.append((str(path), str(error).removeprefix(f"{path}: ")))
            if len(batch) == batch_size:
                flush()
            progress.advance(task)
        flush()

    document = {"model": predictor.model_info(), "predictions": results,
                "skipped": [{"file": f, "reason": r} for f, r in skipped]}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "predictions.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    for file, reason in skipped:
        err.print(f"[yellow]skipped[/] {file}: {reason}")
    err.print(f"{len(results)} image(s) predicted, {len(skipped)} skipped")
    return 1 if skipped else 0
