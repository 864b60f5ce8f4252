"""Did a model learn the watermark shortcut, and do its maps show it? A counterfactual test.

On a synthetic set with a shortcut class c (``synth.json``), the watermark of
:mod:`dermx.data.synth.watermark` is stamped on every test image of another class that carries none,
at a box drawn as the generator draws it (seeded), and the model sees both versions:

- **reliance**: Δp = p(c | stamped) − p(c | clean), averaged over images, and the flip rate, the share of
  images not predicted c when clean and predicted c when stamped. Only the logo differs between the two
  inputs, so a flip is caused by the logo: the model learned the shortcut.
- **visibility**: on the flipped images, the energy share of the class-c map on the logo,
  E = Σ m·w / Σ m (w: the logo's box on the model input), against the logo's area share A = mean w; the
  ratio E / A is 1 for a map blind to the logo. Scoring naturally watermarked images of class c instead
  (``summary["shortcut"]["models"]``) mixes the logo with the class's real lesions, which also carry
  evidence for c; the counterfactual isolates what the logo alone does.

Means come with percentile-bootstrap 95 % CIs over patients (:func:`dermx.metrics.bootstrap_ci`, the
images of a patient drawn together), or over images where no patient is known.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dermx import vocab
from dermx.data import DermXDB, load_rgb
from dermx.data.synth.watermark import box_mask, stamp, watermark_box
from dermx.data.synth.writer import read_synth_manifest
from dermx.evaluate.candidates import CamExplainer, Candidate
from dermx.geometry import Placement, joint_transform, preprocess, resize
from dermx.metrics import bootstrap_ci

__all__ = ["stamp_test"]


def _on_input(box: tuple[int, int, int, int], native: tuple[int, int], placement: Placement,
              input_size: tuple[int, int]) -> torch.Tensor:
    """The logo's box as a 0/1 mask on the model input (nearest resize, then the placement's pad/crop)."""
    mask = torch.from_numpy(box_mask(box, native)).float()[None, None]
    resized = resize(mask, placement.resized, "nearest")[0, 0]
    grid = torch.zeros(input_size)
    top, left, height, width = placement.inside
    v_top, v_left, _, _ = placement.visible
    grid[top:top + height, left:left + width] = resized[v_top:v_top + height, v_left:v_left + width]
    return grid


def _estimate(values: Sequence[float], clusters: Sequence[str] | None, n_boot: int, seed: int) -> dict[str, Any] | None:
    if not values:
        return None
    ci = bootstrap_ci(np.asarray(values, dtype=np.float64), n_boot=n_boot, seed=seed, clusters=clusters)
    return {"mean": float(np.mean(values)), "low": float(ci.low), "high": float(ci.high), "n": len(values),
            "unit": "image" if clusters is None else "patient"}


def _rows(db: DermXDB, candidate: Candidate, stems: Sequence[str], shortcut: str,
          seed: int) -> dict[str, list[Any]]:
    """Per image: Δp and flip; per flipped image: the map's energy share and the logo's area share."""
    explainer = candidate.explain
    assert isinstance(explainer, CamExplainer)
    model, index = explainer.model, vocab.DIAGNOSES.index(shortcut)
    spec = candidate.spec
    transform = joint_transform(spec.size, spec.mean, spec.std, augment=False)
    rng = np.random.default_rng(seed)
    delta, flipped, shares, areas, flipped_stems = [], [], [], [], []
    for stem in stems:
        image = load_rgb(db.image_path(stem))
        native = (image.height, image.width)
        box = watermark_box(rng, native)
        clean, placement = preprocess(image, spec.size, transform, spec.policy)
        marked, _ = preprocess(stamp(image, box), spec.size, transform, spec.policy)
        result = explainer.engine(torch.stack([clean, marked]), [("diagnosis", shortcut)])
        assert isinstance(result.logits, dict)
        p = model.probabilities(result.logits).diagnosis.detach().cpu()
        delta.append(float(p[1, index] - p[0, index]))
        flip = int(p[0].argmax()) != index and int(p[1].argmax()) == index
        flipped.append(float(flip))
        if flip:
            logo = _on_input(box, native, placement, spec.size)
            heat = result.maps[1, 0].detach().cpu().clamp(min=0)
            shares.append(float((heat * logo).sum() / heat.sum()) if heat.sum() > 0 else math.nan)
            areas.append(float(logo.mean()))
            flipped_stems.append(stem)
    return {"delta": delta, "flipped": flipped, "shares": shares, "areas": areas, "stems": list(stems),
            "flipped_stems": flipped_stems}


def _summary(rows: dict[str, list[Any]], patients: dict[str, str] | None, seed: int, n_boot: int) -> dict[str, Any]:
    def clusters(stems: Sequence[str]) -> list[str] | None:
        return [patients.get(s, s) for s in stems] if patients is not None else None

    defined = [(s, v) for s, v in zip(rows["flipped_stems"], rows["shares"], strict=True) if not math.isnan(v)]
    share = _estimate([v for _, v in defined], clusters([s for s, _ in defined]), n_boot, seed)
    area = float(np.mean(rows["areas"])) if rows["areas"] else math.nan
    ratio = None if share is None or not area else {k: share[k] / area for k in ("mean", "low", "high")}
    return {"n": len(rows["delta"]), "delta_p": _estimate(rows["delta"], clusters(rows["stems"]), n_boot, seed),
            "flip_rate": _estimate(rows["flipped"], clusters(rows["stems"]), n_boot, seed),
            "n_flipped": int(sum(rows["flipped"])), "energy_logo": share, "area_logo": area, "energy_ratio": ratio}


def stamp_test(db: DermXDB, candidates: Sequence[Candidate], *, seed: int = 0, n_boot: int = 1000,
               patients: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The counterfactual shortcut test of every model candidate (module docstring); ``None`` when the
    data set has no shortcut class (not synthetic, or generated without one) or no candidate is a model
    (stand-ins without a network cannot be shown a stamped image). ``patients``: each stem's patient,
    the unit of the bootstrap (default: each image its own).

    Candidates of several folds of one model are pooled per model name.
    """
    root = Path(db.root)
    if not (root / "synth.json").is_file():
        return None
    manifest = read_synth_manifest(root)
    shortcut = manifest["config"].get("shortcut")
    if not shortcut:
        return None
    marked = {entry["stem"] for entry in manifest["images"] if entry["watermark"]}
    out: dict[str, Any] = {"class": shortcut, "models": {}}
    per_model: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        if isinstance(candidate.explain, CamExplainer):
            per_model.setdefault(candidate.name, []).append(candidate)
    for name, folds in per_model.items():
        pooled: dict[str, list[Any]] = {"delta": [], "flipped": [], "shares": [], "areas": [], "stems": [],
                                        "flipped_stems": []}
        for candidate in folds:
            stems = [s for s in candidate.stems if s not in marked and db.images[s].diagnosis != shortcut]
            for key, values in _rows(db, candidate, stems, shortcut, seed).items():
                pooled[key] += values
        out["models"][name] = _summary(pooled, patients, seed, n_boot)
    return out if out["models"] else None
