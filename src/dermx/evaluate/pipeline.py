"""``run_evaluation``: the whole of ``dermx evaluate`` as a library function, as ``run_demo`` is the demo.

>>> db = load_dermxdb("synth", image_dir="synth/images")                              # doctest: +SKIP
>>> run = run_evaluation(db, [("DermX", "runs/dermx")], "runs/eval",                 # doctest: +SKIP
...                      leaderboard=LeaderboardConfig())

Steps: which images the image folder holds (:func:`dermx.data.coverage.image_coverage`; the missing
ones listed in the run folder); every model loaded once as a
:class:`~dermx.evaluate.candidates.Candidate` per fold, with its test images and why; the benchmark
(:func:`~dermx.evaluate.benchmark.run.run_benchmark`) and, with a leaderboard configuration, the
method × model leaderboard (:func:`~dermx.evaluate.leaderboard.run.run_leaderboard`) on the same
candidates; the run folder's files (:mod:`dermx.runs`). Rendering the report is the command's job.

Both group the images the same way (``groups``, :mod:`dermx.evaluate.image_groups`: DermXDB's skin tone,
or a groups file's attribute; the test images without a value and the file's rows naming other images
are counted in ``summary.json`` and said). With a leaderboard of the benchmark's CAM method, that
method's deletion AUC per group joins the benchmark's groups in ``summary.json`` (:func:`add_deletion`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dermx.compute import Compute
from dermx.compute.shards import Shards
from dermx.data import DermXDB, data_identity
from dermx.data.coverage import image_coverage
from dermx.evaluate.benchmark.config import BenchmarkConfig, BenchmarkResult
from dermx.evaluate.benchmark.groups import add_score
from dermx.evaluate.benchmark.run import run_benchmark, write_benchmark
from dermx.evaluate.candidates import Candidate, load_candidates
from dermx.evaluate.image_groups import ImageGroups, coverage_message, skin_tones
from dermx.evaluate.leaderboard.config import Leaderboard, LeaderboardConfig
from dermx.evaluate.leaderboard.run import run_leaderboard, write_leaderboard
from dermx.runs.manifest import build_manifest, write_manifest
from dermx.runs.summary import write_summary
from dermx.vocab_map import Aliases

Progress = Callable[[Iterable[Any], str, int], Iterable[Any]]


@dataclass
class Evaluation:
    """What :func:`run_evaluation` did: the candidates, the benchmark result, the leaderboard (if asked)
    and the files written."""

    candidates: list[Candidate]
    benchmark: BenchmarkResult
    leaderboard: Leaderboard | None = None
    written: list[Path] = field(default_factory=list)


def run_evaluation(db: DermXDB, models: Sequence[tuple[str, str | Path]], out: str | Path, *,
                   benchmark: BenchmarkConfig | None = None, leaderboard: LeaderboardConfig | None = None,
                   aliases: Aliases | None = None, allow_overlap: bool = False, require_all_images: bool = False,
                   manifest: dict[str, Any] | None = None, seeds: dict[str, int] | None = None,
                   groups: ImageGroups | None = None, say: Callable[[str], None] | None = None,
                   progress: Progress | None = None, compute: Compute | None = None,
                   shards: Shards | None = None) -> Evaluation:
    """Evaluate every model of ``models`` ((name, checkpoint / run / cv folder)) on ``db`` into the run
    folder ``out`` (module docstring). ``manifest`` and ``seeds``: more configuration sections and seeds
    for ``manifest.json``; ``groups``: the images' groups (default: DermXDB's skin tones);
    ``say`` prints a line, ``progress`` wraps the long loops; ``compute``: where the models explain
    (default: ``shards``'s, the accelerator if any, float32), recorded in ``manifest.json``. ``shards``: the
    processes sharing the work (:class:`~dermx.compute.shards.Shards`); only the main one says anything and
    writes the run folder's files, and the others return after scoring their share (an
    :class:`Evaluation` without files)."""
    shards = shards or Shards()
    compute = compute or shards.compute
    say = (say or (lambda _line: None)) if shards.is_main else (lambda _line: None)
    benchmark = benchmark or BenchmarkConfig()
    out = Path(out)
    coverage = image_coverage(db)
    say(coverage.message())
    if require_all_images or not coverage.found:
        coverage.require_all()
    identity = data_identity(db.root)
    candidates = [c for name, path in models for c in load_candidates(
        name, path, db, method=benchmark.method, threshold=benchmark.threshold, available=coverage.found,
        allow_overlap=allow_overlap, identity=identity["identity"], aliases=aliases)]
    for candidate in candidates:
        say(f"{candidate.label}: {candidate.test.describe()}")
    groups = groups or skin_tones(db)
    warning = coverage_message(groups.coverage({s for c in candidates for s in c.stems}))
    if warning:
        say(warning)
    result = run_benchmark(db, candidates, benchmark, out=out, progress=progress, groups=groups, compute=compute,
                           shards=shards)
    if not shards.is_main:
        if leaderboard is not None:
            run_leaderboard(db, candidates, leaderboard.methods, leaderboard, progress=progress, groups=groups,
                            compute=compute, shards=shards)
        shards.finish()
        return Evaluation(candidates, result)
    written = [p for p in (coverage.write_missing(out),) if p is not None]
    for model, why in result.summary.get("interventions", {}).get("skipped", {}).items():
        say(f"interventions: {model} not measured: {why}")
    result.summary["image_folder"] = coverage.to_dict()
    written += write_benchmark(result, out)
    sections = {"benchmark": benchmark.to_dict(), "models": {name: str(path) for name, path in models},
                "leaderboard": leaderboard.to_dict() if leaderboard else None,
                "groups": {"by": groups.by, "file": Path(groups.file).name if groups.file else None},
                "compute": {"device": str(compute.torch_device()), "precision": compute.precision},
                **(manifest or {})}
    manifest_document = build_manifest(config=sections, seeds={**(seeds or {}), "bootstrap": benchmark.seed},
                                       data=identity)
    written.append(write_manifest(out, manifest_document))
    board = None
    if leaderboard is not None:
        board = run_leaderboard(db, candidates, leaderboard.methods, leaderboard, progress=progress, say=say,
                                groups=groups, compute=compute, shards=shards)
        written += write_leaderboard(board, out)
        if add_deletion(result.summary, board):
            write_summary(out, result.summary, "benchmark")
        else:
            say(f"deletion AUC per {groups.by}: the leaderboard has no row of the benchmark's method "
                f"{benchmark.method} (see leaderboard.json's groups for its methods)")
    shards.finish()
    return Evaluation(candidates, result, board, written)


def add_deletion(summary: dict[str, Any], board: Leaderboard) -> bool:
    """Put the leaderboard's deletion AUC per group of the benchmark's CAM method (``summary["config"]
    ["method"]``, or the row whose maps it shares) into ``summary["groups"]`` beside the other scores
    (:func:`~dermx.evaluate.benchmark.groups.add_score`); whether the leaderboard had such a row."""
    method = summary["config"]["method"]
    per_model = {model: entry for model, by_method in board.groups.get("models", {}).items()
                 for head, entry in by_method.items() if method == head or method in entry["same_maps"]}
    if not per_model:
        return False
    config = board.config
    add_score(summary["groups"], "deletion_auc", per_model,
              {"method": method, "images": board.groups["images"], "steps": config.steps, "baseline": "blur",
               "models": sorted(per_model)})
    return True
