"""The work behind ``dermx predict`` (kept out of ``cli.py`` so ``dermx --help`` stays fast)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.table import Table
from torch.utils.data import Dataset

from dermx.cli_common import fail, refuse_option
from dermx.compute import Compute
from dermx.data import DermXDBError
from dermx.explain.inputs import collect
from dermx.jsonio import strict_json, write_json
from dermx.models.intervention import InterventionError, parse_setting
from dermx.predict.files import RESERVED, write_outputs
from dermx.predict.predictor import Predictor, PreparedImage, UncalibratedError
from dermx.predict.result import Prediction
from dermx.progress import progress
from dermx.text import shorten

#: Words a user may put after a value-less flag (``--json false``).
_VALUE_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "0", "1"})


def _table(prediction: Prediction) -> Table:
    table = Table(title=prediction.source, title_justify="left", show_header=True)
    table.add_column("diagnosis")
    table.add_column("p", justify="right")
    table.add_column("present characteristic")
    table.add_column("p", justify="right")
    present = [c for c in prediction.characteristics if c.present]
    settings = prediction.intervention.settings if prediction.intervention is not None else {}
    for row in range(max(3, len(present))):
        dx = prediction.diagnoses[row] if row < 3 else ("", None)
        ch = present[row] if row < len(present) else None
        table.add_row(dx[0], "" if dx[1] is None else f"{dx[1]:.3f}",
                      (ch.name + (" (set)" if ch.name in settings else "")) if ch else "",
                      f"{ch.probability:.3f}" if ch else "")
    table.caption, table.caption_justify = _trust_line(prediction) + _intervention_line(prediction), "left"
    return table


def _intervention_line(prediction: Prediction) -> str:
    """The characteristics set and how the top diagnosis moved (empty without a setting)."""
    change = prediction.intervention
    if change is None:
        return ""
    settings = ", ".join(f"{n}={'present' if v else 'absent'}" for n, v in change.settings.items())
    top, p = change.before[0]
    return (f"\nset {settings}: without it {top} {p:.3f}; with it {prediction.diagnoses[0][0]} "
            f"{prediction.diagnoses[0][1]:.3f}")


def _trust_line(prediction: Prediction) -> str:
    """The table's caption: the abstention and diagnosis set with their coverage, or why uncalibrated."""
    trust = prediction.trust
    if not trust.calibrated:
        return f"uncalibrated probabilities: {trust.note}"
    shown = ", ".join(trust.diagnosis_set) or "empty"
    answer = f"ABSTAINS, {trust.reason}; " if trust.abstain else ""
    return (f"{answer}calibrated (T = {trust.temperature:.3g}); diagnosis set at {trust.set_coverage:.0%} coverage: "
            f"{shown} ({trust.group_note})")


def _exists(path: Path) -> bool:
    """Whether ``path`` exists; ``False`` also when it cannot even be looked up (a name too long)."""
    try:
        return path.exists()
    except OSError:
        return False


class PreparedFiles(Dataset[PreparedImage | str]):
    """Image files prepared for a predictor (``prepare``: :meth:`~dermx.predict.Predictor.preparer`): item
    ``i`` is the :class:`~dermx.predict.predictor.PreparedImage` of ``paths[i]``, or why it cannot be read."""

    def __init__(self, paths: Sequence[Path], prepare: Callable[[Path], PreparedImage]) -> None:
        self.paths = list(paths)
        self.prepare = prepare

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> PreparedImage | str:
        path = self.paths[index]
        try:
            return self.prepare(path)
        except DermXDBError as error:
            return str(error).removeprefix(f"{path}: ")


def run_predict(images: list[Path], *, model: Path | torch.nn.Module, out: Path | None, as_json: bool, threshold: float,
                method: str, batch_size: int, resolution: str | None, figure_size: int,
                native_maps: bool = False, skin_tone: str | None = None, abstain_risk: float | None = None,
                set_characteristics: Sequence[str] = (), compute: Compute | None = None) -> int:
    """Predict every image; returns the exit code: 0, or 1 when any input was skipped or unreadable.

    No image at all fails (exit 1), an input path that does not exist is a usage error (exit 2, checked
    before any work), both through :func:`dermx.cli_common.fail`.

    Memory: an image is decoded at full size for the model input, then only a copy whose longest side
    is at most ``figure_size`` is kept for the pictures (drawn at that size); ``native_maps`` also stores
    the maps at the image's own size in ``maps.npz``. ``skin_tone`` and ``abstain_risk`` with a model
    without a calibration are usage errors naming the flag; so is a ``set_characteristics`` entry
    (``NAME=present|absent``) the model cannot take (unknown name or value, a dx-only model, no rule).

    ``compute``: where the model runs (:class:`~dermx.predict.Predictor`); its worker processes read and
    preprocess the files, in order (:class:`PreparedFiles`), so the batches are those read in one process."""
    err = Console(stderr=True)
    missing = [str(p) for p in images if not _exists(p)]
    if missing:
        # a word like `false` after a flag that takes no value (`--json false`) arrives here as a path
        hint = ("; flags such as --json take no value" if any(m.lower() in _VALUE_WORDS for m in missing) else "")
        fail(f"no such file or folder: {', '.join(map(shorten, missing[:5]))}"
             f"{f' and {len(missing) - 5} more' if len(missing) > 5 else ''}{hint}", code=2)
    try:
        predictor = Predictor(model, method=method, threshold=threshold, resolution=resolution,  # type: ignore[arg-type]
                              batch_size=batch_size, skin_tone=skin_tone, abstain_risk=abstain_risk, compute=compute)
    except UncalibratedError as error:
        refuse_option(error.option, str(error))
    try:
        settings = dict(parse_setting(text) for text in set_characteristics)
        if settings:
            predictor.intervention_values(settings)
    except InterventionError as error:
        refuse_option("set", str(error))
    inputs = collect(images, RESERVED)
    skipped = list(inputs.skipped)
    if not inputs.images:
        passed = f"; {len(skipped)} file(s) passed over" if skipped else ""
        fail(f"no image to predict in {', '.join(map(str, images))}{passed}")
    results: list[dict[str, Any]] = []
    out_console = Console()
    batch: list[tuple[PreparedImage, str]] = []

    def flush() -> None:
        for (item, folder), prediction in zip(batch, predictor.run([p for p, _ in batch], settings),
                                                strict=True):
            record = prediction.to_dict()
            if out is not None:
                directory = out / folder
                written = write_outputs(prediction, item.image, directory, native_maps=native_maps)
                record["folder"] = str(directory)
                record["files"] = [str(directory / f) for f in written]
            results.append(record)
            if not as_json:
                out_console.print(_table(prediction))
        batch.clear()

    with progress(err, TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=len(inputs.images) < 2, transient=True) as bar:
        task = bar.add_task("predicting", total=len(inputs.images))
        files = PreparedFiles([path for path, _ in inputs.images], predictor.preparer(figure_size))
        for (path, folder), prepared in zip(inputs.images, predictor.compute.loader(files, None), strict=True):
            if isinstance(prepared, str):
                skipped.append((str(path), prepared))
            else:
                batch.append((prepared, folder))
            if len(batch) == batch_size:
                flush()
            bar.advance(task)
        flush()

    document = {"model": predictor.model_info(), "predictions": results,
                "skipped": [{"file": f, "reason": r} for f, r in skipped]}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "predictions.json", document)
    if as_json:
        sys.stdout.write(strict_json(document))
    for file, reason in skipped:
        err.print(f"[yellow]skipped[/] {shorten(file)}: {reason}", markup=True, highlight=False)
    err.print(f"{len(results)} image(s) predicted, {len(skipped)} skipped")
    return 1 if skipped else 0
