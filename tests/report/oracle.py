"""Known-answer stand-ins for models, shared by the benchmark and report tests.

``oracle`` answers the reference diagnosis and characteristics and returns the experts' fused maps
as its own; ``watermark`` always says Psoriasis and points at the watermark box.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dermx import vocab
from dermx.data import DermXDB, load_dermxdb
from dermx.data.synth import generate
from dermx.evaluate.benchmark.config import BenchmarkConfig, BenchmarkResult
from dermx.evaluate.benchmark.run import run_benchmark
from dermx.evaluate.candidates import Candidate, Explanation
from dermx.geometry import InputSpec

N = len(vocab.CHARACTERISTICS)
SHORTCUT = "Psoriasis"


def oracle(batch: dict[str, torch.Tensor]) -> Explanation:
    maps = batch["maps"]
    probs = torch.nn.functional.one_hot(batch["diagnosis"], len(vocab.DIAGNOSES)).float()
    return Explanation(probs, batch["characteristics"].float(), maps[:, :N], maps[:, N:N + 1])


def on_watermark(batch: dict[str, torch.Tensor]) -> Explanation:
    maps = batch["maps"]
    probs = torch.full((len(maps), len(vocab.DIAGNOSES)), 0.1)
    probs[:, vocab.DIAGNOSES.index(SHORTCUT)] = 0.5
    mark = maps[:, N + 2:N + 3]
    return Explanation(probs, torch.ones(len(maps), N), mark.expand(-1, N, -1, -1), mark)


def tiny_synth(root: Path) -> DermXDB:
    generate(root, n_images=24, size=(48, 56), shortcut=SHORTCUT, seed=3, progress=False, repeat_fraction=0.0)
    return load_dermxdb(root, image_dir=root / "images", check_mask_sizes=False)


#: How the stand-ins are fed, and the grid their random baseline is drawn on.
SPEC, GRID = InputSpec((48, 48), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)), (6, 6)


def candidates(db: DermXDB) -> list[Candidate]:
    return [Candidate.stand_in(name, explain, db.stems(), SPEC, GRID)
            for name, explain in (("oracle", oracle), ("watermark", on_watermark))]


def oracle_run(root: Path) -> tuple[DermXDB, BenchmarkResult]:
    db = tiny_synth(root)
    return db, run_benchmark(db, candidates(db), BenchmarkConfig(n_boot=200, batch_size=12))
