"""The models under test: :class:`Candidate` (one model, one fold) and :class:`CamExplainer`.

:func:`load_candidates` finds checkpoints in a checkpoint folder, a training run or a ``dermx cv``
folder and makes one candidate per fold, explained with the CAM method and presence threshold of the
run's :class:`~dermx.evaluate.bench_types.BenchmarkConfig`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dermx import vocab
from dermx.data import DermXDB
from dermx.evaluate.bench_types import BenchmarkConfig
from dermx.evaluate.eval_sets import choose_eval_set
from dermx.evaluate.scoring import Explanation
from dermx.explain import CamEngine, CamResult
from dermx.geometry import ResolutionPolicy
from dermx.models import CheckpointError, DermXNet, ModelConfig, load_checkpoint
from dermx.models.checkpoint import checkpoint_dir
from dermx.vocab_map import Aliases, characteristic_name, diagnosis_name


@dataclass(frozen=True)
class Candidate:
    """One model (one fold) under test: how to feed it and how it explains a batch.

    ``explain`` receives a batch of :class:`~dermx.train.ImageDataset` (``image``, ``maps`` = the
    reference channels, ``diagnosis``, ``characteristics``, ``index``); a model reads only ``image``, a
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
    test_set: dict[str, Any] = field(default_factory=dict)


class CamExplainer:
    """Probabilities and CAMs of a :class:`DermXNet`: every target from one forward pass per batch.

    Characteristic maps of characteristics predicted absent (p < ``threshold``) are zeroed (the DermX
    convention); the diagnosis map is that of the predicted class (argmax of the logits).

    A model of its own vocabulary (:func:`shared_vocabulary`) is read in DermXDB's terms: its diagnosis
    is the softmax over the classes it shares with DermXDB (0 for DermXDB classes it lacks), and only
    its characteristics that are DermXDB's are returned. ``aliases`` maps the model's own names onto
    DermXDB's (:func:`dermxdb_names`).
    """

    def __init__(self, model: DermXNet, method: str = "gradcam", threshold: float = 0.5,
                 aliases: Aliases | None = None) -> None:
        self.model = model
        self.threshold = threshold
        self.engine = CamEngine(model, method, model.config.cam_layer, size="input")
        diagnoses, characteristics = dermxdb_names(model.config, aliases)
        self.dx_columns = [diagnoses.index(d) if d in diagnoses else -1 for d in vocab.DIAGNOSES]
        self.char_columns = [i for i, c in enumerate(characteristics) if c in vocab.CHARACTERISTICS]

    def __call__(self, batch: dict[str, Tensor]) -> Explanation:
        return self._explanation(self.engine(batch["image"]))

    def explain_methods(self, batch: dict[str, Tensor], methods: Sequence[str]) -> dict[str, Explanation]:
        """Each method's explanation of the batch, all from one forward pass
        (:meth:`~dermx.explain.CamEngine.explain_methods`); this explainer's own method is not used."""
        return {m: self._explanation(r) for m, r in self.engine.explain_methods(batch["image"], methods).items()}

    def _explanation(self, result: CamResult) -> Explanation:
        logits = result.logits
        assert isinstance(logits, dict)
        n_char = len(self.model.config.characteristics)
        _, characteristic = (p.cpu() for p in self.model.probabilities(logits))
        shared = [c for c in self.dx_columns if c >= 0]
        within = logits["diagnosis"].detach().cpu().float()[:, shared].softmax(dim=1)
        diagnosis = torch.zeros(within.shape[0], len(vocab.DIAGNOSES))
        diagnosis[:, [i for i, c in enumerate(self.dx_columns) if c >= 0]] = within
        maps = result.maps.detach().cpu().clamp(0, 1)
        keep = (characteristic >= self.threshold).to(maps.dtype)[..., None, None]
        column = torch.tensor(self.dx_columns)[diagnosis.argmax(dim=1)]  # the model's own class index
        dx_maps = maps[:, n_char:].gather(1, column[:, None, None, None].expand(-1, 1, *maps.shape[-2:]))
        chars = self.char_columns
        return Explanation(diagnosis, characteristic[:, chars], (maps[:, :n_char] * keep)[:, chars], dx_maps)


def dermxdb_names(config: ModelConfig, aliases: Aliases | None = None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The model's diagnoses and characteristics, in its column order, named as DermXDB names them
    where they mean the same (:mod:`dermx.vocab_map`: through ``aliases``, then DermXDB's spellings),
    so that a model trained on its own names is scored without retraining. Two columns mapped onto one
    name are an error."""
    names = (tuple(diagnosis_name(d, aliases) for d in config.diagnoses),
             tuple(characteristic_name(c, aliases) for c in config.characteristics))
    for kind, own, mapped in (("classes", config.diagnoses, names[0]),
                              ("characteristics", config.characteristics, names[1])):
        for name in dict.fromkeys(n for n in mapped if mapped.count(n) > 1):
            sources = [o for o, m in zip(own, mapped, strict=True) if m == name]
            raise ValueError(f"the model's {kind} {sources} all map to {name!r} (through the aliases file or "
                             "DermXDB's spellings): a DermXDB name can stand for one column only")
    return names


def shared_vocabulary(config: ModelConfig, aliases: Aliases | None = None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The diagnoses and characteristics a model shares with DermXDB (all of them for a DermXDB model),
    its own names mapped as :func:`dermxdb_names` does."""
    diagnoses, characteristics = dermxdb_names(config, aliases)
    return (tuple(d for d in vocab.DIAGNOSES if d in diagnoses),
            tuple(c for c in characteristics if c in vocab.CHARACTERISTICS))


def find_checkpoints(path: str | Path) -> dict[int | None, Path]:
    """Checkpoint folders under ``path`` by fold: a checkpoint, a training run (``model/``), or a
    ``dermx cv`` folder (``fold_<k>/model``). The fold of a lone checkpoint is read from its config."""
    path = Path(path)
    folds = sorted(path.glob("fold_*/model/config.json"))
    if folds:
        return {int(p.parent.parent.name.removeprefix("fold_")): p.parent for p in folds}
    try:
        directory = checkpoint_dir(path)
    except CheckpointError as error:
        raise FileNotFoundError(f"{path}: no checkpoint (config.json), run folder or cv folder") from error
    fold = json.loads((directory / "config.json").read_text(encoding="utf-8")).get("training_data", {}).get("fold")
    return {fold: directory}


def load_candidates(name: str, path: str | Path, db: DermXDB, config: BenchmarkConfig | None = None, *,
                    available: Sequence[str] | None = None, allow_overlap: bool = False,
                    identity: str | None = None, aliases: Aliases | None = None) -> list[Candidate]:
    """One :class:`Candidate` per fold checkpoint under ``path``, tested on the images it never saw
    (:func:`~dermx.evaluate.eval_sets.choose_eval_set`; ``available``: the stems the image folder
    holds, ``allow_overlap``: score a model whose training images cannot be told apart), explained by a
    :class:`CamExplainer` with ``config``'s CAM method and threshold (default config:
    :class:`BenchmarkConfig`'s); ``aliases``: the model's own class and characteristic names mapped
    onto DermXDB's (:func:`dermxdb_names`)."""
    config = config or BenchmarkConfig()
    out = []
    for fold, directory in sorted(find_checkpoints(path).items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        model = load_checkpoint(directory)
        model_config = model.config
        try:
            diagnoses, characteristics = shared_vocabulary(model_config, aliases)
        except ValueError as error:
            raise ValueError(f"{directory}: {error}") from error
        if not diagnoses:
            raise ValueError(f"{directory}: the model's classes {list(model_config.diagnoses)} share none with "
                             f"DermXDB's {list(vocab.DIAGNOSES)}; map them with an aliases file (--aliases, "
                             "CSV alias,name)")
        test = choose_eval_set(db, model_config, directory, available=available, allow_overlap=allow_overlap,
                               identity=identity)
        if model_config.vocabulary == "own":
            test = test.restrict(db, diagnoses, characteristics)
        out.append(Candidate(name=name, kind=model_config.kind, fold=fold, stems=test.stems,
                             characteristics=characteristics,
                             input_size=model_config.input_size, mean=model_config.mean, std=model_config.std,
                             explain=CamExplainer(model, config.method, config.threshold, aliases),
                             policy=model_config.resolution, checkpoint=str(directory),
                             map_grid=model.map_grid(), test_set=test.to_dict()))
    return out
