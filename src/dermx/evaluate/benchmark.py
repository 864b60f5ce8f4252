"""The explainability benchmark: models' diagnoses, characteristics and maps against the experts.

>>> db = load_dermxdb("synth", image_dir="synth/images")                       # doctest: +SKIP
>>> models = load_candidates("DermX", "runs/cv-dermx", db)                      # doctest: +SKIP
>>> result = run_benchmark(db, models, BenchmarkConfig())                      # doctest: +SKIP
>>> write_benchmark(result, "runs/bench")                                     # doctest: +SKIP

Each :class:`Candidate` is one model for one fold, tested on that fold's test images. Its images and
the reference maps go through the model's own preprocessing (:class:`dermx.train.ImageDataset`, with
the reference channels as masks that follow the image's geometry), so maps are compared on the model
input grid; with ``resolution="native"`` the model's maps are mapped back to each image's native grid
(:func:`~dermx.evaluate.geometry.to_native`) and compared with native-size references instead. Every
batch is scored by :func:`~dermx.evaluate.scoring.score_batch` in one tensor reduction per score.
Statistics are computed by :func:`~dermx.evaluate.bench_summary.summarize_benchmark`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from dermx import vocab
from dermx.data import DermXDB, FusionRule, fuse, resize_mask
from dermx.data.synth.writer import GROUND_TRUTH_DIR, load_ground_truth
from dermx.evaluate.geometry import to_native
from dermx.evaluate.scoring import BASELINES, REFERENCE_CHANNELS, BatchTables, Explanation, score_batch
from dermx.explain import CamEngine
from dermx.jsonio import write_json
from dermx.models import DermXNet, load_checkpoint
from dermx.train.config import ResolutionPolicy
from dermx.train.datasets import ImageDataset, dermxdb_items

Resolution = Literal["input", "native"]
Selection = Literal["present", "predicted", "correct"]
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class ReferenceMaps:
    """The reference channels of an image at a size (picklable ``map_fn`` of :class:`ImageDataset`).

    ``(19, h, w)`` float: 16 fused maps, union, lesions, watermark (see
    :data:`~dermx.evaluate.scoring.REFERENCE_CHANNELS`). ``watermarks`` maps a stem to its watermark
    box (x0, y0, x1, y1) in native pixels (synthetic data); other images get an empty channel. With
    ``drawn`` (a synthetic dataset's folder), 16 more channels follow: the lesions the generator drew,
    per characteristic (:data:`~dermx.evaluate.scoring.DRAWN_CHANNELS`), resized like the raters' masks.
    """

    db: DermXDB
    rule: FusionRule = "mean"
    watermarks: dict[str, Box | None] = field(default_factory=dict)
    drawn: Path | None = None

    def __call__(self, stem: str, size: tuple[int, int] | None) -> Tensor:
        stack = self.db.rater_stack(stem, size=size)  # (16, R, h, w) bool
        record = self.db.images[stem]
        drawn = stack.any(dim=0)
        box = self.watermarks.get(stem)
        mark = np.zeros((record.height, record.width), dtype=bool)
        if box is not None:
            mark[max(0, box[1]):box[3], max(0, box[0]):box[2]] = True
        mark_t = torch.from_numpy(resize_mask(mark, size).copy())
        channels = [fuse(stack, self.rule), fuse(drawn, self.rule)[None], drawn.any(dim=0)[None].float(),
                    mark_t[None].float()]
        if self.drawn is not None:
            truth = load_ground_truth(self.drawn, stem).numpy()
            channels.append(torch.from_numpy(np.stack([resize_mask(m, size) for m in truth])).float())
        return torch.cat(channels)


def synthetic_watermarks(root: str | Path) -> dict[str, Box | None]:
    """Watermark boxes of a synthetic dataset (``synth.json``); empty for any other folder."""
    manifest = Path(root) / "synth.json"
    if not manifest.is_file():
        return {}
    images = json.loads(manifest.read_text(encoding="utf-8"))["images"]
    return {e["stem"]: tuple(e["watermark"]) if e["watermark"] else None for e in images}


def drawn_truth(root: str | Path) -> Path | None:
    """``root`` if it is a synthetic dataset with the generator's drawn lesions (``ground_truth/``)."""
    return Path(root) if (Path(root) / GROUND_TRUTH_DIR).is_dir() else None


@dataclass(frozen=True)
class Candidate:
    """One model (one fold) under test: how to feed it and how it explains a batch.

    ``explain`` receives a batch of :class:`ImageDataset` (``image``, ``maps`` = the reference
    channels, ``diagnosis``, ``characteristics``, ``index``); a model reads only ``image``, a
    known-answer stand-in may read the references.
    """

    name: str
    kind: str
    fold: int | None
    stems: tuple[str, ...]
    characteristics: tuple[str, ...]
    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    explain: Callable[[dict[str, Tensor]], Explanation]
    policy: ResolutionPolicy = "pad"
    checkpoint: str = ""
    map_grid: tuple[int, int] | None = None


class CamExplainer:
    """Probabilities and CAMs of a :class:`DermXNet`: every target from one forward pass per batch.

    Characteristic maps of characteristics predicted absent (p < ``threshold``) are zeroed (the DermX
    convention); the diagnosis map is that of the predicted class (argmax of the logits).
    """

    def __init__(self, model: DermXNet, method: str = "gradcam", threshold: float = 0.5) -> None:
        self.model = model
        self.threshold = threshold
        self.engine = CamEngine(model, method, model.config.cam_layer, size="input")

    def __call__(self, batch: dict[str, Tensor]) -> Explanation:
        result = self.engine(batch["image"])
        logits = result.logits
        assert isinstance(logits, dict)
        n_char = len(self.model.config.characteristics)
        diagnosis, characteristic = (p.cpu() for p in self.model.probabilities(logits))
        maps = result.maps.detach().cpu().clamp(0, 1)
        keep = (characteristic >= self.threshold).to(maps.dtype)[..., None, None]
        predicted = diagnosis.argmax(dim=1)
        dx_maps = maps[:, n_char:].gather(1, predicted[:, None, None, None].expand(-1, 1, *maps.shape[-2:]))
        return Explanation(diagnosis, characteristic, maps[:, :n_char] * keep, dx_maps)


def find_checkpoints(path: str | Path) -> dict[int | None, Path]:
    """Checkpoint folders under ``path`` by fold: a checkpoint, a training run (``model/``), or a
    ``dermx cv`` folder (``fold_<k>/model``). The fold of a lone checkpoint is read from its config."""
    path = Path(path)
    folds = sorted(path.glob("fold_*/model/config.json"))
    if folds:
        return {int(p.parent.parent.name.removeprefix("fold_")): p.parent for p in folds}
    directory = path / "model" if (path / "model" / "config.json").is_file() else path
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{path}: no checkpoint (config.json), run folder or cv folder")
    fold = json.loads((directory / "config.json").read_text(encoding="utf-8")).get("training_data", {}).get("fold")
    return {fold: directory}


def load_candidates(name: str, path: str | Path, db: DermXDB, *, method: str = "gradcam",
                    threshold: float = 0.5, stems: Sequence[str] | None = None) -> list[Candidate]:
    """One :class:`Candidate` per fold checkpoint under ``path``, tested on its fold's test images
    (``stems`` for a checkpoint without a fold, default: every image with a reference diagnosis)."""
    out = []
    for fold, directory in sorted(find_checkpoints(path).items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        model = load_checkpoint(directory)
        config = model.config
        test = db.fold(fold).test if fold is not None else (stems or db.stems())
        out.append(Candidate(name=name, kind=config.kind, fold=fold, stems=tuple(test),
                             characteristics=tuple(config.characteristics), input_size=config.input_size,
                             mean=config.mean, std=config.std, explain=CamExplainer(model, method, threshold),
                             policy=config.resolution, checkpoint=str(directory), map_grid=model.map_grid()))
    return out


@dataclass(frozen=True)
class BenchmarkConfig:
    """Choices of a benchmark run (all stored in ``summary.json``).

    ``selection`` is the headline selection of pairs (all three are computed): ``present`` (target
    present in the reference), ``predicted`` (predicted present) or ``correct`` (present, and the
    image correctly diagnosed). ``agreement_size`` is the (h, w) the rater masks are resized to for
    the rater-agreement ceiling (default: the first model's input size; ``native`` with
    ``resolution="native"``).
    """

    method: str = "gradcam"
    fusion: FusionRule = "mean"
    resolution: Resolution = "input"
    threshold: float = 0.5
    selection: Selection = "present"
    baselines: tuple[str, ...] = BASELINES
    n_boot: int = 1000
    seed: int = 0
    batch_size: int = 16
    tolerance: float = 0.0
    examples_per_class: int = 2
    agreement: bool = True
    agreement_size: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchmarkResult:
    """Tables of a run: per-pair ``items``, ``baselines``, per-image ``images``; the rater-agreement
    summary; example arrays for the report; the models; and (after summarising) ``summary``."""

    items: pd.DataFrame
    baselines: pd.DataFrame
    images: pd.DataFrame
    agreement: dict[str, Any] | None
    examples: dict[str, np.ndarray]
    config: BenchmarkConfig
    models: dict[str, dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)


def _display(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Normalised (B, 3, h, w) inputs → (B, h, w, 3) uint8."""
    m, s = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]
    return (images * s + m).clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


class _Examples:
    """Collects images, union maps and each model's diagnosis map and findings map (the maximum of its
    characteristic maps, absent ones zeroed) for a fixed set of stems."""

    def __init__(self, stems: Sequence[str]) -> None:
        self.stems = list(stems)
        self.arrays: dict[str, dict[str, np.ndarray]] = {}
        self.size: tuple[int, int] | None = None

    def add(self, model: str, stems: Sequence[str], batch: dict[str, Tensor], explanation: Explanation,
            candidate: Candidate) -> None:
        rows = [i for i, s in enumerate(stems) if s in self.stems]
        if not rows:
            return
        images, refs = batch["image"], batch["maps"]
        self.size = self.size or tuple(images.shape[-2:])
        dx_map = F.interpolate(explanation.diagnosis_maps[rows], size=self.size, mode="bilinear", align_corners=False)
        char_maps = explanation.characteristic_maps[rows]
        findings = (F.interpolate(char_maps.amax(dim=1, keepdim=True), size=self.size, mode="bilinear",
                                  align_corners=False) if char_maps.shape[1] else None)
        predicted = explanation.diagnosis[rows].argmax(dim=1).tolist()
        for j, i in enumerate(rows):
            entry = self.arrays.setdefault(stems[i], {})
            if "image" not in entry:
                small = F.interpolate(refs[i:i + 1], size=self.size, mode="bilinear", align_corners=False)[0]
                entry["image"] = _display(F.interpolate(images[i:i + 1], size=self.size, mode="bilinear",
                                                        align_corners=False), candidate.mean, candidate.std)[0]
                entry["union"] = small[len(vocab.CHARACTERISTICS)].numpy().astype(np.float16)
                entry["watermark"] = small[REFERENCE_CHANNELS.index("watermark")].numpy() > 0.5
                entry["reference"] = np.asarray(vocab.DIAGNOSES[int(batch["diagnosis"][i])])
            entry[f"map:{model}"] = dx_map[j, 0].numpy().astype(np.float16)
            if findings is not None:
                entry[f"findings:{model}"] = findings[j, 0].numpy().astype(np.float16)
            entry[f"predicted:{model}"] = np.asarray(vocab.DIAGNOSES[predicted[j]])

    def arrays_by_key(self) -> dict[str, np.ndarray]:
        """``stems`` (N,) and, for each key, the (N, ...) stack over the stems seen by every model."""
        seen = [s for s in self.stems if s in self.arrays]
        keys = sorted(set.intersection(*(set(self.arrays[s]) for s in seen))) if seen else []
        return {"stems": np.asarray(seen), **{k: np.stack([self.arrays[s][k] for s in seen]) for k in keys}}


def example_stems(db: DermXDB, stems: Sequence[str], per_class: int) -> list[str]:
    """The first ``per_class`` stems (sorted) of each reference diagnosis."""
    out: list[str] = []
    for diagnosis in vocab.DIAGNOSES:
        out += [s for s in sorted(stems) if db.images[s].diagnosis == diagnosis][:per_class]
    return out


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


def run_benchmark(db: DermXDB, candidates: Sequence[Candidate], config: BenchmarkConfig | None = None, *,
                  progress: Callable[[Iterable[Any], str, int], Iterable[Any]] | None = None) -> BenchmarkResult:
    """Explain and score every candidate on its test images, then summarise (module docstring).

    ``progress(iterable, description, total)`` wraps the batch loops (e.g. a rich progress bar).
    """
    from dermx.evaluate.bench_summary import summarize_benchmark

    config = config or BenchmarkConfig()
    if not candidates:
        raise ValueError("no models to benchmark")
    wrap = progress or (lambda it, _d, _n: it)
    references = ReferenceMaps(db, config.fusion, synthetic_watermarks(db.root), drawn_truth(db.root))
    all_stems = sorted({s for c in candidates for s in c.stems})
    examples = _Examples(example_stems(db, all_stems, config.examples_per_class))
    tables: list[tuple[Candidate, BatchTables]] = []
    models: dict[str, dict[str, Any]] = {}
    for candidate in candidates:
        entry = models.setdefault(candidate.name, {"kind": candidate.kind, "folds": [], "checkpoints": [],
                                                   "characteristics": list(candidate.characteristics),
                                                   "input_size": list(candidate.input_size),
                                                   "map_grid": list(candidate.map_grid or ())})
        entry["folds"].append(candidate.fold)
        entry["checkpoints"].append(candidate.checkpoint)
        items = dermxdb_items(db, candidate.stems, vocab.CHARACTERISTICS)
        dataset = ImageDataset(items, candidate.input_size, candidate.mean, candidate.std, policy=candidate.policy,
                               map_fn=references)  # type: ignore[arg-type]
        loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=False)
        label = f"explaining {candidate.name}" + (f" (fold {candidate.fold})" if candidate.fold is not None else "")
        for batch in wrap(loader, label, len(loader)):
            stems = [items[i].key for i in batch["index"].tolist()]
            with torch.no_grad():
                explanation = candidate.explain(batch)
            examples.add(candidate.name, stems, batch, explanation, candidate)
            if config.resolution == "native":
                parts = _score_native(db, references, batch, stems, explanation, candidate, config)
            else:
                parts = [score_batch(stems, batch["diagnosis"], batch["characteristics"].bool(), batch["maps"],
                                     explanation, candidate.characteristics, threshold=config.threshold,
                                     tolerance=config.tolerance, baselines=config.baselines, seed=config.seed)]
            tables += [(candidate, part) for part in parts]
    result = BenchmarkResult(
        items=_concat(tables, "items"), baselines=_concat(tables, "baselines"),
        images=_with_metadata(db, _concat(tables, "images")),
        agreement=_agreement(db, all_stems, candidates, config, wrap), examples=examples.arrays_by_key(),
        config=config, models=models)
    result.summary = summarize_benchmark(result)
    return result


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

    size = config.agreement_size or (None if config.resolution == "native" else candidates[0].input_size)
    result = rater_agreement(db, stems=stems, size=size, intra=False,
                             progress=lambda s: wrap(s, "scoring rater agreement", len(stems)))
    return result.summary


def write_benchmark(result: BenchmarkResult, out: str | Path) -> list[Path]:
    """Write ``items.csv``, ``baselines.csv``, ``images.csv``, ``summary.json`` and ``examples.npz``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ("items", "baselines", "images"):
        getattr(result, name).to_csv(out / f"{name}.csv", index=False)
        written.append(out / f"{name}.csv")
    write_json(out / "summary.json", result.summary)
    np.savez_compressed(out / "examples.npz", **result.examples)
    return [*written, out / "summary.json", out / "examples.npz"]
