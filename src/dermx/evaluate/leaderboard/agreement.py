"""The leaderboard's agreement columns: every method's maps scored against the experts as the benchmark
scores them (:func:`~dermx.evaluate.benchmark.scoring.score_batch`), all methods of a batch from one
forward pass, on the protocol's selection of pairs (:data:`~dermx.evaluate.leaderboard.config.PROTOCOLS`).

Score-CAM (a method that scores masked images: one forward pass per channel of the CAM layer per
image) is scored on the first ``score_images`` test images of each fold (sorted stems) only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pandas as pd
import torch

from dermx.data import DermXDB, ReferenceMaps
from dermx.evaluate.benchmark.scoring import score_batch
from dermx.evaluate.benchmark.summary import select
from dermx.evaluate.candidates import CamExplainer, Candidate
from dermx.evaluate.leaderboard.config import PROTOCOLS, LeaderboardConfig
from dermx.explain.methods import get_method

Progress = Callable[[Iterable[Any], str, int], Iterable[Any]]


def agreement_rows(db: DermXDB, candidates: Sequence[Candidate], methods: Sequence[str], config: LeaderboardConfig,
                   wrap: Progress) -> dict[str, pd.DataFrame]:
    """``method → rows`` of the benchmark's item table (every fold of one model), on the protocol's
    selection and map kind."""
    fusion, selection, kind = PROTOCOLS[config.protocol]
    references = ReferenceMaps.for_benchmark(db, fusion)
    tables: dict[str, list[pd.DataFrame]] = {m: [] for m in methods}
    masked = [m for m in methods if get_method(m).uses_scores]  # Score-CAM: on config.score_images only
    for candidate in candidates:
        explainer = candidate.explain
        if not isinstance(explainer, CamExplainer):
            raise ValueError(f"{candidate.label}: a stand-in has no CAM methods to compare")
        subset = set(sorted(candidate.stems)[:config.score_images])
        batches = candidate.batches(db, map_fn=references, batch_size=config.batch_size)
        for stems, batch in wrap(batches, f"agreement of {candidate.label}, {len(methods)} methods", len(batches)):
            keep = torch.tensor([stem in subset for stem in stems])
            for chosen, part in (([m for m in methods if m not in masked], None), (masked, keep)):
                if not chosen or (part is not None and not part.any()):
                    continue
                sub = batch if part is None else {k: v[part] for k, v in batch.items()}
                sub_stems = stems if part is None else [s for s, k in zip(stems, part.tolist(), strict=True) if k]
                with torch.no_grad():
                    explained = explainer.explain_methods(sub, chosen)
                for method, explanation in explained.items():
                    scored = score_batch(sub_stems, sub["diagnosis"], sub["characteristics"].bool(), sub["maps"],
                                         explanation, candidate.characteristics, grid=candidate.map_grid,
                                         threshold=config.threshold, baselines=(), seed=config.seed)
                    tables[method].append(scored.items.assign(fold=candidate.fold))
    out = {}
    for method in methods:
        rows = select(pd.concat(tables[method], ignore_index=True), selection)
        out[method] = rows[rows["kind"] == kind]
    return out
