"""The explainability benchmark: models' diagnoses, characteristics and maps against the experts.

>>> db = load_dermxdb("synth", image_dir="synth/images")                       # doctest: +SKIP
>>> config = BenchmarkConfig()                                                # doctest: +SKIP
>>> models = load_candidates("DermX", "runs/cv-dermx", db, config)             # doctest: +SKIP
>>> result = run_benchmark(db, models, config)                                # doctest: +SKIP
>>> write_benchmark(result, "runs/bench")                                     # doctest: +SKIP

Each :class:`~dermx.evaluate.candidates.Candidate` is one model for one fold, tested on that fold's
test images. Its images and the reference maps (:class:`dermx.data.ReferenceMaps`, benchmark channels)
go through the model's own preprocessing (:class:`dermx.train.ImageDataset`, with the reference
channels as masks that follow the image's geometry), so maps are compared on the model input grid;
with ``map_size="native"`` the model's maps are mapped back to each image's native grid
(:func:`~dermx.geometry.to_native`) and compared with native-size references instead. Every
batch is scored by :func:`~dermx.evaluate.scoring.score_batch` in one tensor reduction per score.
Statistics are computed by :func:`~dermx.evaluate.bench_summary.summarize_benchmark`.

Modules of the benchmark: :mod:`~dermx.evaluate.candidates` (models under test),
:mod:`~dermx.evaluate.bench_types` (config and result), :mod:`~dermx.evaluate.scoring` (rows and
scores of a batch), :mod:`~dermx.evaluate.stats` and :mod:`~dermx.evaluate.bench_summary`
(``summary.json``), and this one (the run and its files).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from dermx import vocab
from dermx.data import DermXDB, ReferenceMaps
from dermx.evaluate.bench_summary import summarize_benchmark
from dermx.evaluate.bench_types import BenchmarkConfig, BenchmarkResult
from dermx.evaluate.candidates import Candidate
from dermx.evaluate.examples import Examples, choose_examples
from dermx.evaluate.scoring import BatchTables, Explanation, score_batch
from dermx.evaluate.shortcut import stamp_test
from dermx.geometry import to_native
from dermx.jsonio import write_json
from dermx.train.datasets import ImageDataset, dermxdb_items

__all__ = ["run_benchmark", "shared_stems", "write_benchmark"]

#: The per-row tables of a run, each written as ``<name>.csv``.
TABLES: tuple[str, ...] = ("items", "baselines", "images")


def _score_native(db: DermXDB, references: ReferenceMaps, batch: dict[str, Tensor], stems: list[str],
                  explanation: Explanation, candidate: Candidate, config: BenchmarkConfig) -> list[BatchTables]:
    """Per image: maps back to the native grid, references at native size, then :func:`score_batch`."""
    out = []
    for i, stem in enumerate(stems):
        record = db.images[stem]
        native = (record.height, record.width)

        def back(maps: Tensor, native: tuple[int, int] = native) -> Tensor:
            return to_native(maps, native, candidate.input_size, candidate.policy)

        one = Explanation(explanation.diagnosis[i:i + 1], explanation.characteristic[i:i + 1],
                          back(explanation.characteristic_maps[i:i + 1]), back(explanation.diagnosis_maps[i:i + 1]))
        out.append(score_batch([stem], batch["diagnosis"][i:i + 1], batch["characteristics"][i:i + 1].bool(),
                               references(stem, None)[None], one, candidate.characteristics,
                               threshold=config.threshold, tolerance=config.tolerance,
                               baselines=config.baselines, seed=config.seed))
    return out


def shared_stems(candidates: Sequence[Candidate]) -> list[str]:
    """The images every model (the union of its folds' test images) is scored on, sorted."""
    covered: dict[str, set[str]] = {}
    for candidate in candidates:
        covered.setdefault(candidate.name, set()).update(candidate.stems)
    return sorted(set.intersection(*covered.values())) if covered else []


def _model_entry(models: dict[str, dict[str, Any]], candidate: Candidate, out: Path | None) -> None:
    """Add ``candidate`` (one fold) to its model's entry of ``summary["models"]`` (its checkpoint path
    relative to the run folder ``out`` when given)."""
    entry = models.setdefault(candidate.name, {"kind": candidate.kind, "folds": [], "checkpoints": [],
                                               "characteristics": list(candidate.characteristics),
                                               "input_size": list(candidate.input_size),
                                               "map_grid": list(candidate.map_grid or ()),
                                               "test_images": {"n": 0, "rules": [], "per_fold": []}})
    entry["folds"].append(candidate.fold)
    checkpoint = candidate.checkpoint
    entry["checkpoints"].append(os.path.relpath(checkpoint, out) if checkpoint and out is not None else checkpoint)
    tests = entry["test_images"]
    tests["per_fold"].append({"fold": candidate.fold, "n": len(candidate.stems), **candidate.test_set})
    tests["n"] += len(candidate.stems)
    rule = candidate.test_set.get("description")
    if rule and rule not in tests["rules"]:
        tests["rules"].append(rule)


class _TableWriter:
    """Appends each model's rows to ``items.csv``, ``baselines.csv`` and ``images.csv`` as soon as
    they are scored, so a failure later in the run loses no finished work."""

    def __init__(self, out: Path | None) -> None:
        self.out = out
        self.started: set[str] = set()
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            for name in TABLES:
                (out / f"{name}.csv").unlink(missing_ok=True)

    def add(self, db: DermXDB, parts: list[tuple[Candidate, BatchTables]]) -> None:
        if self.out is None or not parts:
            return
        for name in TABLES:
            frame = _concat(parts, name)
            if name == "images":
                frame = _with_metadata(db, frame)
            path = self.out / f"{name}.csv"
            frame.to_csv(path, mode="a" if name in self.started else "w", header=name not in self.started,
                         index=False)
            self.started.add(name)


def run_benchmark(db: DermXDB, candidates: Sequence[Candidate], config: BenchmarkConfig | None = None, *,
                  progress: Callable[[Iterable[Any], str, int], Iterable[Any]] | None = None,
                  out: str | Path | None = None) -> BenchmarkResult:
    """Explain and score every candidate on its test images, then summarise (module docstring).

    ``progress(iterable, description, total)`` wraps the batch loops (e.g. a rich progress bar). With
    ``out``, each model's tables are written there as soon as it is scored (:func:`write_benchmark`
    rewrites them whole at the end). Examples are drawn from the images every model is scored on.
    """
    config = config or BenchmarkConfig()
    if not candidates:
        raise ValueError("no models to benchmark")
    wrap = progress or (lambda it, _d, _n: it)
    writer = _TableWriter(Path(out) if out is not None else None)
    references = ReferenceMaps.for_benchmark(db, config.fusion)
    all_stems = sorted({s for c in candidates for s in c.stems})
    tables: list[tuple[Candidate, BatchTables]] = []
    models: dict[str, dict[str, Any]] = {}
    for candidate in candidates:
        _model_entry(models, candidate, writer.out)
        items = dermxdb_items(db, candidate.stems, vocab.CHARACTERISTICS)
        dataset = ImageDataset(items, candidate.input_size, candidate.mean, candidate.std, policy=candidate.policy,
                               map_fn=references)
        loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=False)
        label = f"explaining {candidate.name}" + (f" (fold {candidate.fold})" if candidate.fold is not None else "")
        mine: list[tuple[Candidate, BatchTables]] = []
        for batch in wrap(loader, label, len(loader)):
            stems = [items[i].key for i in batch["index"].tolist()]
            with torch.no_grad():
                explanation = candidate.explain(batch)
            if config.map_size == "native":
                parts = _score_native(db, references, batch, stems, explanation, candidate, config)
            else:
                parts = [score_batch(stems, batch["diagnosis"], batch["characteristics"].bool(), batch["maps"],
                                     explanation, candidate.characteristics, threshold=config.threshold,
                                     tolerance=config.tolerance, baselines=config.baselines, seed=config.seed)]
            mine += [(candidate, part) for part in parts]
        writer.add(db, mine)
        tables += mine
    items, images = _concat(tables, "items"), _with_metadata(db, _concat(tables, "images"))
    shared = set(shared_stems(candidates))
    reasons = (choose_examples(images[images["stem"].isin(shared)], items[items["stem"].isin(shared)])
               if config.examples else {})
    result = BenchmarkResult(
        items=items, baselines=_concat(tables, "baselines"), images=images,
        agreement=_agreement(db, all_stems, candidates, config, wrap),
        examples=_examples(db, candidates, reasons, references, config), config=config, models=models)
    result.summary = summarize_benchmark(result)
    if config.shortcut_test:
        result.summary["shortcut_test"] = stamp_test(db, candidates, seed=config.seed, n_boot=config.n_boot)
    return result


def _examples(db: DermXDB, candidates: Sequence[Candidate], reasons: dict[str, list[str]],
              references: ReferenceMaps, config: BenchmarkConfig) -> dict[str, np.ndarray]:
    """Explain the chosen example images again with every candidate and keep their maps
    (:mod:`dermx.evaluate.examples`)."""
    examples = Examples(reasons, references)
    for candidate in candidates:
        items = dermxdb_items(db, [s for s in candidate.stems if s in reasons], vocab.CHARACTERISTICS)
        if not items:
            continue
        dataset = ImageDataset(items, candidate.input_size, candidate.mean, candidate.std, policy=candidate.policy,
                               map_fn=examples.map_fn)
        for batch in DataLoader(dataset, batch_size=config.batch_size, shuffle=False):
            with torch.no_grad():
                explanation = candidate.explain(examples.without_raters(batch))
            examples.add(candidate.name, [items[i].key for i in batch["index"].tolist()], batch, explanation,
                         candidate)
    return examples.arrays_by_key()


def _concat(tables: list[tuple[Candidate, BatchTables]], name: str) -> pd.DataFrame:
    frames = [getattr(t, name).assign(model=c.name, model_kind=c.kind, fold=c.fold) for c, t in tables]
    frame = pd.concat(frames, ignore_index=True)
    first = ["model", "model_kind", "fold"]
    return frame[first + [c for c in frame.columns if c not in first]]


def _with_metadata(db: DermXDB, images: pd.DataFrame) -> pd.DataFrame:
    """Add the strata columns ``skin_tone`` and ``age`` (DermXDB's age groups) of each image."""
    return images.assign(skin_tone=[db.images[s].skin_tone or "unknown" for s in images["stem"]],
                         age=[db.images[s].age or "unknown" for s in images["stem"]])


def _agreement(db: DermXDB, stems: list[str], candidates: Sequence[Candidate], config: BenchmarkConfig,
               wrap: Callable[[Iterable[Any], str, int], Iterable[Any]]) -> dict[str, Any] | None:
    """Rater agreement (pairwise and leave-one-rater-out) on the benchmark's test images."""
    if not config.agreement:
        return None
    from dermx.evaluate.interrater import rater_agreement

    size = config.agreement_size or (None if config.map_size == "native" else candidates[0].input_size)
    result = rater_agreement(db, stems=stems, size=size, intra=False,
                             progress=lambda s, _label: wrap(s, "scoring rater agreement", len(stems)))
    return result.summary


def write_benchmark(result: BenchmarkResult, out: str | Path) -> list[Path]:
    """Write ``items.csv``, ``baselines.csv``, ``images.csv``, ``summary.json`` and ``examples.npz``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in TABLES:
        getattr(result, name).to_csv(out / f"{name}.csv", index=False)
        written.append(out / f"{name}.csv")
    write_json(out / "summary.json", result.summary)
    np.savez_compressed(out / "examples.npz", **result.examples)
    return [*written, out / "summary.json", out / "examples.npz"]
