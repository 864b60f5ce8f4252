"""The explainability benchmark: models' diagnoses, characteristics and maps against the experts.

>>> db = load_dermxdb("synth", image_dir="synth/images")                       # doctest: +SKIP
>>> models = load_candidates("DermX", "runs/cv-dermx", db)                     # doctest: +SKIP
>>> result = run_benchmark(db, models, BenchmarkConfig())                     # doctest: +SKIP
>>> write_benchmark(result, "runs/bench")                                     # doctest: +SKIP

Each :class:`~dermx.evaluate.candidates.Candidate` is one model for one fold, tested on its test
images. Its images and the reference maps (:class:`dermx.data.ReferenceMaps`, benchmark channels) go
through the model's own preprocessing (:meth:`Candidate.batches
<dermx.evaluate.candidates.Candidate.batches>`, with the reference channels as masks that follow the
image's geometry), so maps are compared on the model input grid; with ``map_size="native"`` the
model's maps are mapped back to each image's native grid (:func:`~dermx.geometry.to_native`) and
compared with native-size references instead. Every batch is scored by
:func:`~dermx.evaluate.benchmark.scoring.score_batch` in one tensor reduction per score. Statistics
are computed by :func:`~dermx.evaluate.benchmark.summary.summarize_benchmark`; the files are written
by :mod:`dermx.runs`. The images table carries each image's group (:mod:`dermx.evaluate.image_groups`:
skin tone, or the attribute of a groups file), the groups of the summary's trust figures. With
``config.interventions``, each network's intervention curve and reliance on its characteristics
(:mod:`~dermx.evaluate.benchmark.interventions`) join the summary and ``interventions.csv``.
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

from dermx import vocab
from dermx.compute import Compute
from dermx.compute.shards import Shards
from dermx.data import DermXDB, ReferenceMaps
from dermx.evaluate.agreement.interrater import rater_agreement
from dermx.evaluate.agreement.tables import NO_DIAGNOSIS
from dermx.evaluate.benchmark.ceiling import ceiling_rows
from dermx.evaluate.benchmark.config import BenchmarkConfig, BenchmarkResult
from dermx.evaluate.benchmark.examples import Examples, choose_examples
from dermx.evaluate.benchmark.interventions import intervention_study
from dermx.evaluate.benchmark.scoring import SCORES, BatchTables, score_batch
from dermx.evaluate.benchmark.shortcut import stamp_test
from dermx.evaluate.benchmark.summary import summarize_benchmark
from dermx.evaluate.candidates import Batches, Candidate, Explanation
from dermx.evaluate.image_groups import UNKNOWN, ImageGroups, skin_tones
from dermx.evaluate.stats import one_thread
from dermx.geometry import to_native
from dermx.runs.examples import write_examples
from dermx.runs.layout import TABLES
from dermx.runs.summary import write_summary
from dermx.runs.tables import write_tables
from dermx.trust.fitted import ModelCalibration

__all__ = ["identities", "run_benchmark", "shared_stems", "write_benchmark"]

#: ``progress(iterable, description, total)``: wraps a loop, e.g. in a rich progress bar.
Progress = Callable[[Iterable[Any], str, int], Iterable[Any]]


def _score(batch: dict[str, Tensor], stems: list[str], explanation: Explanation, candidate: Candidate,
           config: BenchmarkConfig, refs: Tensor) -> BatchTables:
    return score_batch(stems, batch["diagnosis"], batch["characteristics"].bool(), refs, explanation,
                       candidate.characteristics, grid=candidate.map_grid, threshold=config.threshold,
                       tolerance=config.pointing_tolerance, baselines=config.baselines, seed=config.seed)


def _score_native(db: DermXDB, references: ReferenceMaps, batch: dict[str, Tensor], stems: list[str],
                  explanation: Explanation, candidate: Candidate, config: BenchmarkConfig) -> list[BatchTables]:
    """Per image: maps back to the native grid, references at native size, then :func:`score_batch`."""
    out = []
    for i, stem in enumerate(stems):
        record = db.images[stem]
        native = (record.height, record.width)

        def back(maps: Tensor, native: tuple[int, int] = native) -> Tensor:
            return to_native(maps, native, candidate.spec.size, candidate.spec.policy)

        logits = explanation.diagnosis_logits
        one = Explanation(explanation.diagnosis[i:i + 1], explanation.characteristic[i:i + 1],
                          back(explanation.characteristic_maps[i:i + 1]), back(explanation.diagnosis_maps[i:i + 1]),
                          logits[i:i + 1] if logits is not None else None)
        single = {k: v[i:i + 1] for k, v in batch.items() if k != "maps"}
        out.append(_score(single, [stem], one, candidate, config, references(stem, None)[None]))
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
                                               "names": candidate.names.to_dict(),
                                               "input_size": list(candidate.spec.size),
                                               "map_grid": list(candidate.map_grid),
                                               "trained_raters": _trained_raters(candidate),
                                               "test_images": {"n": 0, "rules": [], "per_fold": []}})
    entry["folds"].append(candidate.fold)
    checkpoint = candidate.checkpoint
    entry["checkpoints"].append(os.path.relpath(checkpoint, out) if checkpoint and out is not None else checkpoint)
    tests = entry["test_images"]
    tests["per_fold"].append({"fold": candidate.fold, **candidate.test.to_dict()})
    tests["n"] += len(candidate.stems)
    if candidate.test.description not in tests["rules"]:
        tests["rules"].append(candidate.test.description)


def _trained_raters(candidate: Candidate) -> list[str] | str | None:
    """The raters a model learned its labels and attention from: their names, ``"all"`` (every
    first-pass rater), or ``None`` when unknown (a stand-in, or a checkpoint that does not record it)."""
    if candidate.model is None:
        return None
    record = candidate.model.config.training_data
    if "raters" not in record:
        return None
    return record["raters"] or "all"


def _tables(db: DermXDB, parts: list[tuple[Candidate, BatchTables]], groups: ImageGroups) -> dict[str, pd.DataFrame]:
    """The per-pair and per-image tables of the scored batches (``items``, ``baselines``, ``images``)."""
    return {name: _with_metadata(db, _concat(parts, name), groups) if name == "images" else _concat(parts, name)
            for name in ("items", "baselines", "images")}


def run_benchmark(db: DermXDB, candidates: Sequence[Candidate], config: BenchmarkConfig | None = None, *,
                  progress: Progress | None = None, out: str | Path | None = None,
                  groups: ImageGroups | None = None, compute: Compute | None = None,
                  shards: Shards | None = None) -> BenchmarkResult:
    """Explain and score every candidate on its test images, then summarise (module docstring).

    ``progress`` wraps the batch loops (e.g. a rich progress bar). With ``out``, the tables are written
    there as soon as every model is scored (:func:`write_benchmark` rewrites them whole at the end).
    ``shards``: the processes sharing the work (:class:`~dermx.compute.shards.Shards`; default: this one):
    each batch of a model is a unit, scored by one process; every process gets every unit's rows, and
    only the main one goes on to the statistics (the others return the result without them).
    Examples are drawn from the images every model is scored on. ``groups``: the images' groups of the
    trust figures (default: DermXDB's skin tones, :func:`~dermx.evaluate.image_groups.skin_tones`).
    ``compute``: where the models explain (default: :class:`~dermx.compute.Compute`'s, the accelerator if
    any, float32; :meth:`Candidate.on <dermx.evaluate.candidates.Candidate.on>`); scores are float32 on the CPU.
    """
    config = config or BenchmarkConfig()
    if not candidates:
        raise ValueError("no models to benchmark")
    shards = shards or Shards()
    compute = compute or shards.compute
    candidates = [candidate.on(compute) for candidate in candidates]
    groups = groups or skin_tones(db)
    out_dir = Path(out) if out is not None else None
    references = ReferenceMaps.for_benchmark(db, config.fusion, config.raters)
    all_stems = sorted({s for c in candidates for s in c.stems})
    size = config.batch_size
    units = [(index, start, min(start + size, len(candidate.stems))) for index, candidate in enumerate(candidates)
             for start in range(0, len(candidate.stems), size)]
    batches: dict[int, Batches] = {}  # each candidate's images, read by its units

    def score_unit(unit: tuple[int, int, int]) -> list[BatchTables]:
        index, start, stop = unit
        candidate = candidates[index]
        if index not in batches:
            batches[index] = candidate.batches(db, map_fn=references, batch_size=size, annotators=config.raters)
        stems, batch = batches[index].batch(start, stop)
        with torch.no_grad():
            explanation = candidate.explain(batch)
        if config.map_size == "native":
            return _score_native(db, references, batch, stems, explanation, candidate, config)
        return [_score(batch, stems, explanation, candidate, config, batch["maps"])]

    scored = shards.map("benchmark", units, score_unit,
                        key=(config.to_dict(), identities(candidates), [c.stems for c in candidates], units,
                             compute.precision),
                        progress=progress, description="explaining and scoring")
    parts = [(candidates[index], part) for (index, _, _), unit_parts in zip(units, scored, strict=True)
             for part in unit_parts]
    models: dict[str, dict[str, Any]] = {}
    calibrations: dict[str, list[ModelCalibration | None]] = {}
    for candidate in candidates:
        _model_entry(models, candidate, out_dir)
        calibrations.setdefault(candidate.name, []).append(candidate.calibration)
    ceiling = _ceiling(db, candidates, config, shards, progress)
    if not shards.is_main:  # the other processes only scored their share
        empty = pd.DataFrame()
        return BenchmarkResult(items=empty, baselines=empty, images=empty, ceiling=empty, raters=empty,
                               agreement=None, examples={}, config=config, models=models, groups=groups,
                               calibrations=calibrations)
    wrap = progress or (lambda it, _d, _n: it)
    tables = _tables(db, parts, groups)
    del scored, parts  # the rows live on in the tables only (peak memory: BENCHMARKS.md, "Scale")
    if out_dir is not None:  # as soon as every model is scored, before any statistic: a later failure
        write_tables(out_dir, tables)  # loses no finished work
    items, images = tables["items"], tables["images"]
    shared = set(shared_stems(candidates))
    reasons = (choose_examples(images[images["stem"].isin(shared)], items[items["stem"].isin(shared)])
               if config.examples else {})
    result = BenchmarkResult(
        items=items, baselines=tables["baselines"], images=images,
        ceiling=ceiling, raters=rater_answers(db, all_stems, config.raters),
        agreement=_agreement(db, all_stems, candidates, config, wrap),
        examples=_examples(db, candidates, reasons, references, config), config=config, models=models,
        groups=groups, calibrations=calibrations)
    result.summary = summarize_benchmark(result)
    patients = {s: db.images[s].patient for s in all_stems}
    if config.shortcut_test:
        result.summary["shortcut_test"] = stamp_test(db, candidates, seed=config.seed, n_boot=config.n_boot,
                                                     patients=patients)
    if config.interventions:
        with one_thread():
            result.summary["interventions"], result.interventions = intervention_study(
                db, candidates, config, patients=patients, images=images, progress=wrap)
    return result


def _chunks(stems: Sequence[str], size: int) -> list[tuple[str, ...]]:
    """``stems`` in the batches of ``size`` a single pass over them forms."""
    return [tuple(stems[i:i + size]) for i in range(0, len(stems), size)]


def identities(candidates: Sequence[Candidate]) -> list[tuple[str, str, int | None, float | None]]:
    """What identifies each candidate's model for a resumed run: its label, checkpoint and the
    checkpoint's modification time (a stand-in: none)."""
    return [(c.name, c.checkpoint, c.fold, Path(c.checkpoint).stat().st_mtime if c.checkpoint and
             Path(c.checkpoint).exists() else None) for c in candidates]


def _examples(db: DermXDB, candidates: Sequence[Candidate], reasons: dict[str, list[str]],
              references: ReferenceMaps, config: BenchmarkConfig) -> dict[str, np.ndarray]:
    """Explain the chosen example images again with every candidate and keep their maps
    (:mod:`dermx.evaluate.benchmark.examples`)."""
    examples = Examples(reasons, references, {s: (db.images[s].height, db.images[s].width) for s in reasons})
    for candidate in candidates:
        chosen = [s for s in candidate.stems if s in reasons]
        if not chosen:
            continue
        for stems, batch in candidate.batches(db, chosen, map_fn=examples.map_fn, batch_size=config.batch_size):
            with torch.no_grad():
                explanation = candidate.explain(examples.without_raters(batch))
            examples.add(candidate.name, stems, batch, explanation, candidate)
    return examples.arrays_by_key()


def _concat(tables: list[tuple[Candidate, BatchTables]], name: str) -> pd.DataFrame:
    frames = [getattr(t, name).assign(model=c.name, model_kind=c.kind, fold=c.fold) for c, t in tables]
    frame = pd.concat(frames, ignore_index=True)
    first = ["model", "model_kind", "fold"]
    return frame[first + [c for c in frame.columns if c not in first]]


def _with_metadata(db: DermXDB, images: pd.DataFrame, groups: ImageGroups) -> pd.DataFrame:
    """Add each image's ``patient`` (the unit of resampling), the strata columns ``skin_tone`` and ``age``
    (DermXDB's age groups) and its group, the column ``groups.by`` (a groups file's ``skin_tone`` or ``age``
    replaces DermXDB's)."""
    tones = skin_tones(db)
    return images.assign(patient=[db.images[s].patient for s in images["stem"]],
                         skin_tone=tones.labels(images["stem"]),
                         age=[db.images[s].age or UNKNOWN for s in images["stem"]]).assign(
        **{groups.by: groups.labels(images["stem"])})


def _ceiling(db: DermXDB, candidates: Sequence[Candidate], config: BenchmarkConfig, shards: Shards,
             progress: Progress | None) -> pd.DataFrame:
    """Every rater scored as each candidate is (:mod:`~dermx.evaluate.benchmark.ceiling`), once per
    distinct (input grid, test images); each batch of images is a unit of ``shards``."""
    columns = ["model", "model_kind", "fold", "stem", "kind", "reference", "rater", *SCORES]
    if not config.agreement:
        return pd.DataFrame(columns=columns)
    keys = [(c.spec.size, c.spec.policy, c.stems) for c in candidates]
    distinct = list(dict.fromkeys(keys))
    first = {key: candidates[keys.index(key)] for key in distinct}
    units = [(index, chunk) for index, key in enumerate(distinct) for chunk in _chunks(key[2], config.batch_size)]

    def rows(unit: tuple[int, tuple[str, ...]]) -> pd.DataFrame:
        return ceiling_rows(db, first[distinct[unit[0]]], rule=config.fusion, tolerance=config.pointing_tolerance,
                            annotators=config.raters, native=config.map_size == "native",
                            batch_size=config.batch_size, stems=unit[1])

    parts = shards.map("ceiling", units, rows, key=(config.to_dict(), [k[:2] for k in distinct], units),
                       progress=progress, description="scoring the raters as the models")
    done = {i: _concat_rows([part for (j, _), part in zip(units, parts, strict=True) if j == i], columns[3:])
            for i in range(len(distinct))}
    frames = [done[distinct.index(key)].assign(model=c.name, model_kind=c.kind, fold=c.fold)
              for key, c in zip(keys, candidates, strict=True)]
    return pd.concat(frames, ignore_index=True)[columns]


def _concat_rows(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """The rows of ``frames`` in order (frames without rows left out, so they cannot change a column's type)."""
    full = [frame for frame in frames if len(frame)]
    return pd.concat(full, ignore_index=True) if full else pd.DataFrame(columns=columns)


def rater_answers(db: DermXDB, stems: Sequence[str], annotators: Sequence[str] | None) -> pd.DataFrame:
    """Each rater's answers on ``stems``: the diagnosis (the first diagnosis tag of the file, else
    ``No diagnosis``) and every characteristic outlined (``sel:<characteristic>``); the raters of
    ``annotators`` (default: every first-pass rater)."""
    rows = [{"stem": stem, "rater": rating.annotator, "diagnosis": rating.diagnosis or NO_DIAGNOSIS,
             **{f"sel:{c}": c in rating.characteristics for c in vocab.CHARACTERISTICS}}
            for stem in stems for rating in db.ratings_of(stem, annotators)]
    return pd.DataFrame(rows, columns=["stem", "rater", "diagnosis", *(f"sel:{c}" for c in vocab.CHARACTERISTICS)])


def _agreement(db: DermXDB, stems: list[str], candidates: Sequence[Candidate], config: BenchmarkConfig,
               wrap: Progress) -> dict[str, Any] | None:
    """Rater agreement (pairwise and leave-one-rater-out) on the benchmark's test images."""
    if not config.agreement:
        return None
    size = config.agreement_size or (None if config.map_size == "native" else candidates[0].spec.size)
    annotators = list(config.raters) if config.raters is not None else None
    result = rater_agreement(db, annotators=annotators, stems=stems, size=size, intra=False,
                             progress=lambda s, _label: wrap(s, "scoring rater agreement", len(stems)))
    return result.summary


def write_benchmark(result: BenchmarkResult, out: str | Path) -> list[Path]:
    """Write the run's tables, ``summary.json`` and ``examples.npz`` (:mod:`dermx.runs`) into ``out``."""
    tables = {name: getattr(result, name) for name in TABLES if getattr(result, name) is not None}
    return [*write_tables(out, tables), write_summary(out, result.summary, "benchmark"),
            write_examples(out, result.examples)]
