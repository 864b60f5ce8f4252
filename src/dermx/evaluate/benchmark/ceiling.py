"""The raters' ceiling on a model's own pairs: every rater scored exactly as the model is.

A model's map of characteristic c on image i is scored against the fusion of all the raters of i. The
ceiling asks how well a rater's own outline scores under the same rule, leaving that rater out of the
reference: for each rater r of image i, its binary mask of c (and its union over the characteristics)
goes through the model's preprocessing (as the references do: :class:`dermx.data.RaterMasks` rides
along as maps), and is scored by :func:`~dermx.evaluate.benchmark.scoring.score_maps` against the
fusion (the run's rule) of the *other* raters of i, on the model's grid, with the model's pointing
tolerance. A rater who did not outline a characteristic that another rater outlined has shown
nothing: the rule for misses gives every score its worst value, as it does to a model that calls the
characteristic absent. An image rated by one rater has no ceiling (nobody to leave out).

One row per (image, kind, reference, rater), kinds ``characteristic`` (reference: c, for every c
outlined by at least one rater) and ``diagnosis-union`` (reference: ``union``). The ceiling of a pair
is the mean over its raters; on a model's selected pairs it is estimated as the model is (image means,
patient bootstrap: :func:`ceiling_rows` then :mod:`~dermx.evaluate.benchmark.summary`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from torch import Tensor

from dermx import vocab
from dermx.choices import FusionRule
from dermx.data import DermXDB, RaterMasks, fuse
from dermx.data.references import UNION
from dermx.evaluate.benchmark.scoring import SCORES, score_maps
from dermx.evaluate.candidates import Candidate

_N = len(vocab.CHARACTERISTICS)


def leave_one_out(masks: Tensor, rule: FusionRule) -> Tensor:
    """``(R, C, h, w)`` binary masks of R ≥ 2 raters → ``(R, C, h, w)``: for each rater, the fusion of the
    others (``rule``, :func:`dermx.data.fuse`)."""
    r = masks.shape[0]
    return torch.stack([fuse(masks[[k for k in range(r) if k != i]].transpose(0, 1).bool(), rule)
                        for i in range(r)])


def image_rows(stem: str, masks: Tensor, rule: FusionRule, tolerance: float) -> pd.DataFrame:
    """The ceiling rows of one image from the masks ``(R, 16, h, w)`` of the raters who rated it."""
    raters = masks.shape[0]
    union = masks.amax(dim=1, keepdim=True)
    own = torch.cat([masks, union], dim=1).float()  # (R, 17, h, w)
    refs = leave_one_out(torch.cat([masks, union], dim=1), rule)
    outlined = own.amax(dim=(-2, -1)) > 0  # (R, 17)
    present = outlined.any(dim=0, keepdim=True).expand(raters, -1)
    scores = score_maps(own, refs, tolerance=tolerance, misses=present & ~outlined)
    r, t = present.nonzero(as_tuple=True)
    names = (*vocab.CHARACTERISTICS, UNION)
    kinds = ["diagnosis-union" if k == _N else "characteristic" for k in t.tolist()]
    return pd.DataFrame({"stem": stem, "kind": kinds, "reference": [names[k] for k in t.tolist()], "rater": r.numpy(),
                         **{name: values[r, t].double().numpy() for name, values in scores.items()}})


def ceiling_rows(db: DermXDB, candidate: Candidate, *, rule: FusionRule, tolerance: float,
                 annotators: Sequence[str] | None = None, native: bool = False, batch_size: int = 16,
                 stems: Sequence[str] | None = None) -> pd.DataFrame:
    """The ceiling rows (module docstring) of the candidate's test images (or of ``stems``), on its input
    grid (or, with ``native``, on each image's own pixels), with the raters of ``annotators`` (default:
    every first-pass rater)."""
    masks = RaterMasks.of(db, annotators)
    n_raters = len(masks.annotators)
    stems = candidate.stems if stems is None else stems
    frames = []
    if native:
        for stem in stems:
            rated = masks.rated(stem)
            if len(rated) >= 2:
                record = db.images[stem]
                stack = masks(stem, None).reshape(n_raters, _N, record.height, record.width)
                frames.append(image_rows(stem, stack[rated], rule, tolerance))
    else:
        for batch_stems, batch in candidate.batches(db, stems, map_fn=masks, batch_size=batch_size):
            stacks = batch["maps"].reshape(len(batch_stems), n_raters, _N, *batch["maps"].shape[-2:])
            for stem, stack in zip(batch_stems, stacks, strict=True):
                rated = masks.rated(stem)
                if len(rated) >= 2:
                    frames.append(image_rows(stem, stack[rated], rule, tolerance))
    columns = ["stem", "kind", "reference", "rater", *SCORES]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def pair_ceiling(rows: pd.DataFrame) -> pd.DataFrame:
    """The ceiling of each (image, kind, reference) pair: the mean over its raters of every score."""
    return rows.groupby(["stem", "kind", "reference"], as_index=False, sort=True)[list(SCORES)].mean()
