"""The model under test: :class:`Candidate`, built once per (model, fold) and passed to every stage.

A candidate holds everything the benchmark, the leaderboard and the report need to know about one
model for one fold, worked out once when it is loaded (:func:`load_candidates`):

- the loaded network (``model``) and how it explains a batch (``explain``, a :class:`CamExplainer`);
- its input contract (``spec``: size, normalisation, resolution policy) and its measured map grid;
- its names (:class:`ModelNames`: the model's own class and characteristic names, in column order,
  and what DermXDB calls them);
- its test images and the reason they were chosen (:class:`~dermx.evaluate.eval_sets.EvalSet`).

Nothing downstream reloads a checkpoint from its path or measures the grid again. A known-answer
stand-in (a function of the batch's reference maps) is a candidate too, built with
:meth:`Candidate.stand_in`.

Where it computes (:class:`~dermx.compute.Compute`): a candidate is loaded on the CPU in float32;
:meth:`Candidate.on` moves its network to a device and explains at a precision there, and its batches
are loaded by the compute's worker processes (pinned on CUDA). Whatever the device, an
:class:`Explanation` holds float32 tensors on the CPU.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Subset

from dermx import vocab
from dermx.choices import CamMethod, LabelRule, ModelKind
from dermx.compute import Compute
from dermx.data import DermXDB
from dermx.evaluate.eval_sets import EvalSet, choose_eval_set
from dermx.explain import CamEngine, CamResult
from dermx.geometry import InputSpec
from dermx.models import CheckpointError, DermXNet, ModelConfig, load_checkpoint
from dermx.models.checkpoint import checkpoint_dir
from dermx.train.datasets import ImageDataset, MapFn, dermxdb_items
from dermx.trust.fitted import ModelCalibration
from dermx.vocab_map import Aliases, characteristic_name, diagnosis_name


@dataclass(frozen=True)
class Explanation:
    """What a model says about a batch: probabilities and maps in [0, 1] on the batch's grid.

    ``diagnosis`` (B, 6) softmax probabilities in :data:`dermx.vocab.DIAGNOSES` order;
    ``characteristic`` (B, C) sigmoid probabilities of the candidate's characteristics
    (:attr:`Candidate.characteristics`; C = 0 for ``dx-only``); ``characteristic_maps`` (B, C, h, w);
    ``diagnosis_maps`` (B, 1, h, w), the map of the predicted diagnosis. ``diagnosis_logits`` (B, 6): the
    logits behind ``diagnosis`` in the same order, NaN for a DermXDB class the model lacks (``None``: a
    stand-in that gives probabilities only); calibration (:mod:`dermx.trust`) needs them.
    """

    diagnosis: Tensor
    characteristic: Tensor
    characteristic_maps: Tensor
    diagnosis_maps: Tensor
    diagnosis_logits: Tensor | None = None


#: How a candidate explains a batch of :class:`~dermx.train.ImageDataset` (``image``, ``maps`` = the
#: reference channels, ``diagnosis``, ``characteristics``, ``index``); a model reads only ``image``,
#: a known-answer stand-in may read the references.
Explain = Callable[[dict[str, Tensor]], Explanation]


@dataclass(frozen=True)
class ModelNames:
    """A model's class and characteristic names in its column order (``diagnoses``,
    ``characteristics``) and the DermXDB name of each where they mean the same (``dermxdb_diagnoses``,
    ``dermxdb_characteristics``: mapped through an aliases file, then DermXDB's spellings; a name
    DermXDB does not know is kept as it is)."""

    diagnoses: tuple[str, ...]
    characteristics: tuple[str, ...]
    dermxdb_diagnoses: tuple[str, ...]
    dermxdb_characteristics: tuple[str, ...]

    @classmethod
    def of(cls, config: ModelConfig, aliases: Aliases | None = None) -> ModelNames:
        """The names of a model (class docstring); two columns mapped onto one DermXDB name are an error."""
        mapped = (tuple(diagnosis_name(d, aliases) for d in config.diagnoses),
                  tuple(characteristic_name(c, aliases) for c in config.characteristics))
        for kind, own, names in (("classes", config.diagnoses, mapped[0]),
                                 ("characteristics", config.characteristics, mapped[1])):
            for name in dict.fromkeys(n for n in names if names.count(n) > 1):
                sources = [o for o, m in zip(own, names, strict=True) if m == name]
                raise ValueError(f"the model's {kind} {sources} all map to {name!r} (through the aliases file or "
                                 "DermXDB's spellings): a DermXDB name can stand for one column only")
        return cls(tuple(config.diagnoses), tuple(config.characteristics), *mapped)

    @classmethod
    def dermxdb(cls, characteristics: Sequence[str] = vocab.CHARACTERISTICS) -> ModelNames:
        """A model of DermXDB's six classes and the given characteristics."""
        return cls(vocab.DIAGNOSES, tuple(characteristics), vocab.DIAGNOSES, tuple(characteristics))

    @property
    def shared_diagnoses(self) -> tuple[str, ...]:
        """DermXDB's diagnoses the model has, in DermXDB's order."""
        return tuple(d for d in vocab.DIAGNOSES if d in self.dermxdb_diagnoses)

    @property
    def diagnosis_columns(self) -> list[int]:
        """For each DermXDB diagnosis (:data:`dermx.vocab.DIAGNOSES` order), the model's column of it, or -1
        where the model lacks the class."""
        return [self.dermxdb_diagnoses.index(d) if d in self.dermxdb_diagnoses else -1 for d in vocab.DIAGNOSES]

    @property
    def shared_characteristics(self) -> tuple[str, ...]:
        """DermXDB's characteristics the model has, in the model's column order."""
        return tuple(c for c in self.dermxdb_characteristics if c in vocab.CHARACTERISTICS)

    def to_dict(self) -> dict[str, Any]:
        """The model's own names and their DermXDB names, for ``summary.json``."""
        return {"diagnoses": dict(zip(self.diagnoses, self.dermxdb_diagnoses, strict=True)),
                "characteristics": dict(zip(self.characteristics, self.dermxdb_characteristics, strict=True))}


@dataclass(frozen=True)
class Candidate:
    """One model for one fold under test (module docstring)."""

    name: str
    fold: int | None
    kind: ModelKind
    spec: InputSpec
    map_grid: tuple[int, int]
    names: ModelNames
    test: EvalSet
    explain: Explain
    checkpoint: str = ""
    model: DermXNet | None = None
    calibration: ModelCalibration | None = None
    compute: Compute = field(default_factory=lambda: Compute(device="cpu"))

    def on(self, compute: Compute) -> Candidate:
        """This candidate computing with ``compute`` (module docstring): its network moved to the device
        (in place: :meth:`Compute.place <dermx.compute.Compute.place>`), a :class:`CamExplainer` at the
        precision; a stand-in's own ``explain`` is kept."""
        explain = self.explain
        if isinstance(explain, CamExplainer):
            explain = explain.on(compute)
        elif self.model is not None:
            compute.place(self.model)
        return replace(self, explain=explain, compute=compute)

    @property
    def stems(self) -> tuple[str, ...]:
        """The test images."""
        return self.test.stems

    @property
    def characteristics(self) -> tuple[str, ...]:
        """The characteristics scored: DermXDB's that the model has, in its column order (the columns of
        :attr:`Explanation.characteristic`)."""
        return self.names.shared_characteristics

    @property
    def label(self) -> str:
        """``name`` or ``name (fold k)``, for messages and progress bars."""
        return self.name + (f" (fold {self.fold})" if self.fold is not None else "")

    def batches(self, db: DermXDB, stems: Sequence[str] | None = None, *, map_fn: MapFn | None = None,
                batch_size: int = 16, annotators: Sequence[str] | None = None, rule: LabelRule = "any") -> Batches:
        """The test images (or ``stems``) in batches through this model's preprocessing, with the reference
        channels of ``map_fn`` riding along as maps and the characteristic labels (``characteristics``, of
        every DermXDB characteristic in :data:`dermx.vocab.CHARACTERISTICS` order) of the raters of
        ``annotators`` (default: every first-pass rater) under ``rule`` (present when outlined by one of them,
        or by more than half: :func:`~dermx.train.datasets.characteristic_labels`) (:class:`Batches`)."""
        return Batches(db, self, self.stems if stems is None else stems, map_fn, batch_size, annotators, rule)

    @classmethod
    def stand_in(cls, name: str, explain: Explain, stems: Sequence[str], spec: InputSpec, map_grid: tuple[int, int],
                 *, characteristics: Sequence[str] = vocab.CHARACTERISTICS, kind: ModelKind = "dermx",
                 fold: int | None = None, calibration: ModelCalibration | None = None) -> Candidate:
        """A candidate that is not a checkpoint (a known answer, a baseline of one's own): ``explain``
        answers every batch, on the given test ``stems``; ``calibration``: the one it carries, if any."""
        return cls(name, fold, kind, spec, tuple(map_grid), ModelNames.dermxdb(characteristics),  # type: ignore[arg-type]
                   EvalSet(tuple(stems), "overlap-allowed", note="a stand-in, not a trained model"), explain,
                   calibration=calibration)


class Batches:
    """A candidate's images in batches through its own preprocessing: iterating gives
    ``(stems, batch)``, with ``batch`` a dict of :class:`~dermx.train.ImageDataset` samples."""

    def __init__(self, db: DermXDB, candidate: Candidate, stems: Sequence[str], map_fn: MapFn | None,
                 batch_size: int, annotators: Sequence[str] | None = None, rule: LabelRule = "any") -> None:
        self.items = dermxdb_items(db, stems, vocab.CHARACTERISTICS, rule, annotators=annotators)
        self.dataset = ImageDataset(self.items, candidate.spec, map_fn=map_fn)
        self.compute = candidate.compute
        self.loader = candidate.compute.loader(self.dataset, batch_size)

    def batch(self, start: int, stop: int) -> tuple[list[str], dict[str, Tensor]]:
        """The images ``start`` to ``stop`` (positions in the stems) as one batch, as iterating gives it
        when they form one of its batches (``batch["index"]``: their positions, as there)."""
        ((stems, batch),) = self._named(self.compute.loader(Subset(self.dataset, range(start, stop)), stop - start))
        return stems, batch

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[list[str], dict[str, Tensor]]]:
        return self._named(self.loader)

    def _named(self, loader: Iterable[dict[str, Tensor]]) -> Iterator[tuple[list[str], dict[str, Tensor]]]:
        for batch in loader:
            yield [self.items[i].key for i in batch["index"].tolist()], batch


class CamExplainer:
    """Probabilities and CAMs of a :class:`DermXNet`: every target from one forward pass per batch.

    Characteristic maps of characteristics predicted absent (p < ``threshold``) are zeroed (the DermX
    convention); the diagnosis map is that of the predicted class (argmax of the logits).

    A model of its own vocabulary is read in DermXDB's terms through its :class:`ModelNames`: its
    diagnosis is the softmax over the classes it shares with DermXDB (0 for DermXDB classes it lacks),
    and only its characteristics that are DermXDB's are returned.
    """

    def __init__(self, model: DermXNet, names: ModelNames, method: CamMethod = "gradcam",
                 threshold: float = 0.5, precision: str = "32") -> None:
        self.model = model
        self.names = names
        self.threshold = threshold
        self.engine = CamEngine(model, method, model.config.cam_layer, size="input", precision=precision)
        self.dx_columns = names.diagnosis_columns
        self.char_columns = [i for i, c in enumerate(names.dermxdb_characteristics) if c in vocab.CHARACTERISTICS]

    def on(self, compute: Compute) -> CamExplainer:
        """This explainer with its model on ``compute``'s device (moved in place) at its precision."""
        compute.place(self.model)
        return CamExplainer(self.model, self.names, self.engine.method.name, self.threshold, compute.precision)

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
        _, characteristic = (p.float().cpu() for p in self.model.probabilities(logits))
        shared = [c for c in self.dx_columns if c >= 0]
        own = logits["diagnosis"].detach().cpu().float()[:, shared]
        ours = [i for i, c in enumerate(self.dx_columns) if c >= 0]
        diagnosis = torch.zeros(own.shape[0], len(vocab.DIAGNOSES))
        diagnosis[:, ours] = own.softmax(dim=1)
        dx_logits = torch.full_like(diagnosis, float("nan"))
        dx_logits[:, ours] = own
        maps = result.maps.detach().float().cpu().clamp(0, 1)
        keep = (characteristic >= self.threshold).to(maps.dtype)[..., None, None]
        column = torch.tensor(self.dx_columns)[diagnosis.argmax(dim=1)]  # the model's own class index
        dx_maps = maps[:, n_char:].gather(1, column[:, None, None, None].expand(-1, 1, *maps.shape[-2:]))
        chars = self.char_columns
        return Explanation(diagnosis, characteristic[:, chars], (maps[:, :n_char] * keep)[:, chars], dx_maps,
                           dx_logits)


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


def load_candidates(name: str, path: str | Path, db: DermXDB, *, method: CamMethod = "gradcam",
                    threshold: float = 0.5, available: Sequence[str] | None = None, allow_overlap: bool = False,
                    identity: str | None = None, aliases: Aliases | None = None) -> list[Candidate]:
    """One :class:`Candidate` per fold checkpoint under ``path`` (a checkpoint, a training run or a
    ``dermx cv`` folder), tested on the images it never saw
    (:func:`~dermx.evaluate.eval_sets.choose_eval_set`; ``available``: the stems the image folder
    holds, ``allow_overlap``: score a model whose training images cannot be told apart), explained by a
    :class:`CamExplainer` with ``method`` and presence ``threshold``; ``aliases``: the model's own class
    and characteristic names mapped onto DermXDB's (:meth:`ModelNames.of`)."""
    out = []
    for fold, directory in sorted(find_checkpoints(path).items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        model = load_checkpoint(directory)
        config = model.config
        try:
            names = ModelNames.of(config, aliases)
        except ValueError as error:
            raise ValueError(f"{directory}: {error}") from error
        if not names.shared_diagnoses:
            raise ValueError(f"{directory}: the model's classes {list(config.diagnoses)} share none with "
                             f"DermXDB's {list(vocab.DIAGNOSES)}; map them with an aliases file (--aliases, "
                             "CSV alias,name)")
        test = choose_eval_set(db, config, directory, available=available, allow_overlap=allow_overlap,
                               identity=identity)
        if config.vocabulary == "own":
            test = test.restrict(db, names.shared_diagnoses, names.shared_characteristics)
        out.append(Candidate(name, fold, config.kind, config.input_spec, model.map_grid(), names, test,
                             CamExplainer(model, names, method, threshold), str(directory), model,
                             carried_calibration(model, directory)))
    return out


def carried_calibration(model: DermXNet, directory: Path) -> ModelCalibration | None:
    """The calibration a checkpoint carries (``config.calibration``, fitted on its validation split by
    training), or ``None`` when it carries none; an unreadable record is an error naming the checkpoint."""
    record = getattr(model.config, "calibration", None)
    if record is None:
        return None
    try:
        return ModelCalibration.from_dict(record)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{directory}: its calibration record cannot be read ({error})") from error
