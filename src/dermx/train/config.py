"""Training configuration: four sections (data set, model, optimisation, run), loadable from YAML or
JSON (sectioned or flat), overridable from the CLI by option name.

Defaults follow the original DermX training: AdamW (lr 5e-4), cosine annealing with warm restarts
(T0 = 3 epochs, T_mult = 3, eta_min = 1e-5), batch 32, guided-attention weight λ = 10 for ``dermx+``.

``ga_warmup_epochs`` (new here, not in the papers): λ ramps linearly from 0 to its value over the first
epochs (per optimisation step). From random weights the guided-attention gradient on the backbone is
~15-20× the cross-entropy one at the first step (measured on the synthetic set); without the ramp it
drives the features before they carry any class signal. 0 reproduces the papers (full λ at once).

Recipes (``recipe``, ``dermx train --recipe``): named sets of option values applied before the options
given with them, so that an option given explicitly always wins (defaults < recipe < config file < command
line). ``paper`` is the defaults themselves: the papers' fine-tuning of pretrained weights (lr 5e-4,
warm restarts, 120 epochs, the ``small`` preset). ``small-data`` trains from random weights on a few
hundred images: the ``cpu`` preset (ResNet-10t at 112 px, which learns from random weights far faster
than ResNet-18 on the synthetic set) and the demo's optimisation (AdamW at lr 3e-3 after a one-epoch
warm-up, one cosine decay, batch 16, no dropout, no augmentation, balanced characteristic BCE weights)
over 60 epochs, since a few hundred images give few steps an epoch. Measured on a 240-image synthetic
set with the README's command (``benchmarks/train_small_data.py``, BENCHMARKS.md).

Options for short from-scratch runs (new here; defaults keep the papers' recipe):

- ``lr_schedule``: ``restarts`` (the papers': cosine warm restarts T0/T_mult/eta_min, per epoch) or
  ``cosine`` (one cosine decay from ``lr`` to ``eta_min`` over the whole run, per step, after a linear
  warm-up of ``warmup_epochs`` from ``lr / 10``).
- ``color_jitter``: with ``augment``, also jitter colours (geometric flips / affine always apply).
- ``char_pos_weight``: BCE ``pos_weight`` of the characteristic logits; ``"balanced"`` gives each
  characteristic n_negative / n_positive of the TRAINING labels (clipped to [1, ``char_pos_weight_max``]),
  a number gives all the same weight, ``None`` none (the papers').
- ``calibration_fraction``: the share of the training side's patients held out as a **calibration** part
  (after the validation part is carved out), used only to fit the calibration of the end of training
  (:mod:`dermx.train.calibrate`): it neither trains nor selects the model, so its images are exchangeable
  with new ones, as split conformal sets need. 0 (default): the calibration is fitted on the validation
  part, which also selected the checkpoint (optimistic; the record says which part it was).
- ``char_weight``: λ_c of the characteristic BCE in the total loss (1, the papers'); Koh et al.'s joint
  concept-bottleneck training varies it.
- ``bottleneck`` (``cbm`` models only; :mod:`dermx.train.bottleneck`): ``joint`` (default: one loss,
  CE + λ_c·BCE), ``sequential`` or ``independent`` (the network is trained on the characteristics alone,
  then its diagnosis head is fitted on the frozen characteristic predictions, or on the training labels).
  ``head_interventions`` (``sequential`` only): the rate of the random interventions of the head's fit
  (0: none, Koh et al.'s sequential model). ``first_stage`` (``sequential`` or ``independent``): the folder
  of a trained model with characteristics (a ``dermx`` or ``dermx+`` checkpoint) whose backbone and
  characteristic head the bottleneck takes as they are: nothing is trained but the head, the network options
  are the first stage's, and the run's data parts must be the ones it was trained on (checked).
- ``channels_last``: train with NHWC tensors (``torch.channels_last``). On CPU it speeds up dilated
  backbones (output stride 8) about 2× and slows undilated ones at small inputs (measured in
  BENCHMARKS.md); the weights and results do not change beyond float rounding.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from dermx.choices import BottleneckMode
from dermx.data.fusion import FusionRule
from dermx.geometry import ResolutionPolicy, check_resolution
from dermx.jsonio import write_json
from dermx.models.dermx_net import ModelKind

LabelRule = Literal["any", "majority"]
DERMX_PLUS_GA_WEIGHT = 10.0


@dataclass
class DataOptions:
    """Which images and labels, how they are split, augmented and loaded. ``raters``: the annotators whose
    outlines give a DermXDB model its characteristic labels and guided-attention targets (default: every
    first-pass rater); a held-out-raters protocol trains on some and evaluates against the others."""

    data: str | None = None
    images: str | None = None
    labels: str | None = None
    aliases: str | None = None
    require_all_images: bool = False
    fold: int | None = None
    n_folds: int = 10
    val_fraction: float = 0.15
    calibration_fraction: float = 0.0
    fusion: FusionRule = "mean"
    label_rule: LabelRule = "any"
    raters: list[str] | None = None
    augment: bool = True
    color_jitter: bool = True
    cache_dir: str | None = None
    in_memory: bool = False
    num_workers: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if not 0.0 <= self.calibration_fraction < 1.0:
            raise ValueError(f"calibration_fraction must be in [0, 1), got {self.calibration_fraction}")


@dataclass
class ModelOptions:
    """The network to build (:func:`dermx.models.build_model`'s arguments) and its input contract; the
    checkpoint's :class:`~dermx.models.ModelConfig` is made from these."""

    kind: ModelKind = "dermx"
    bottleneck: BottleneckMode | None = None
    head_interventions: float = 0.0
    first_stage: str | None = None
    preset: str | None = "small"
    backbone: str | None = None
    characteristics: str | list[str] | None = None
    input_size: tuple[int, int] | None = None
    resolution: ResolutionPolicy = "pad"
    output_stride: int | None = None
    cam_layer: str | None = None
    dropout: float = 0.2
    pretrained: bool = True
    backbone_weights: str | None = None
    random_fallback: bool = False

    def __post_init__(self) -> None:
        if self.input_size is not None:
            self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
        check_resolution(self.resolution)
        if self.first_stage and (self.kind != "cbm" or self.bottleneck not in ("sequential", "independent")):
            raise ValueError("first_stage is for cbm models trained sequential or independent (a trained network "
                             f"whose head is fitted apart), not {self.kind} ({self.bottleneck or 'no bottleneck'})")
        if not 0.0 <= self.head_interventions <= 1.0:
            raise ValueError(f"head_interventions must be a rate in [0, 1], got {self.head_interventions}")
        if self.head_interventions and (self.kind, self.bottleneck) != ("cbm", "sequential"):
            raise ValueError("head_interventions is for cbm models trained sequential (their head is fitted on "
                             f"frozen characteristics), not {self.kind} ({self.bottleneck or 'no bottleneck'})")


@dataclass
class OptimOptions:
    """The losses, the optimiser and its schedule, and when to stop."""

    epochs: int = 120
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 1e-2
    t0: int = 3
    t_mult: int = 3
    eta_min: float = 1e-5
    lr_schedule: Literal["restarts", "cosine"] = "restarts"
    warmup_epochs: float = 0.0
    char_weight: float = 1.0
    char_pos_weight: Literal["balanced"] | float | None = None
    char_pos_weight_max: float = 10.0
    class_weights: dict[str, float] | None = None
    ga_weight: float | None = None
    ga_alpha: float = 0.5
    ga_smooth: float = 1.0
    ga_resolution: Literal["input", "features"] = "features"
    ga_warmup_epochs: float = 2.0
    early_stopping: int | None = None
    monitor: str = "val/loss"
    recipe: str = "paper"

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r}; choose one of {sorted(RECIPES)}")
        if not self.char_weight >= 0:
            raise ValueError(f"char_weight must be >= 0, got {self.char_weight}")
        if self.ga_warmup_epochs < 0:
            raise ValueError(f"ga_warmup_epochs must be >= 0, got {self.ga_warmup_epochs}")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if self.lr_schedule not in ("restarts", "cosine"):
            raise ValueError(f"lr_schedule must be 'restarts' or 'cosine', got {self.lr_schedule!r}")
        if isinstance(self.char_pos_weight, str) and self.char_pos_weight != "balanced":
            raise ValueError(f"char_pos_weight must be 'balanced', a number or None, got {self.char_pos_weight!r}")


@dataclass
class RunOptions:
    """Where the run goes, its seed, and the hardware it runs on (Lightning's Trainer)."""

    out: str = "runs/dermx"
    resume: bool = False
    seed: int = 0
    deterministic: bool = False
    channels_last: bool = False
    accelerator: str = "auto"
    devices: str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    log_every_n_steps: int = 10
    progress: bool = True


#: Named sets of option values (module docstring): ``paper`` is the defaults, ``small-data`` trains from
#: random weights on a few hundred images.
RECIPES: dict[str, dict[str, Any]] = {
    "paper": {},
    "small-data": {"preset": "cpu", "epochs": 60, "batch_size": 16, "lr": 3e-3, "lr_schedule": "cosine",
                   "warmup_epochs": 1.0, "dropout": 0.0, "augment": False, "char_pos_weight": "balanced"},
}
#: Option names of earlier releases, still read from config files (with a warning) for one release.
RENAMED_OPTIONS: dict[str, str] = {"weights": "backbone_weights"}

#: The sections of a :class:`TrainConfig`, by attribute name.
SECTIONS: dict[str, type] = {"dataset": DataOptions, "model": ModelOptions, "optim": OptimOptions, "run": RunOptions}
#: Every option's section: option names are unique across sections, so the command line and flat
#: config files name options without their section.
OPTION_SECTION: dict[str, str] = {f.name: section for section, kind in SECTIONS.items() for f in fields(kind)}


@dataclass
class TrainConfig:
    """Every knob of a training run, in four sections: ``dataset``, ``model``, ``optim``, ``run``.

    Build one from option names with :meth:`of` (``TrainConfig.of(kind="dermx+", epochs=30)``); each
    name belongs to one section (:data:`OPTION_SECTION`). Paths may be strings; ``None`` means "not
    given".
    """

    dataset: DataOptions = field(default_factory=DataOptions)
    model: ModelOptions = field(default_factory=ModelOptions)
    optim: OptimOptions = field(default_factory=OptimOptions)
    run: RunOptions = field(default_factory=RunOptions)

    @classmethod
    def of(cls, **options: Any) -> TrainConfig:
        """The defaults with ``options`` (flat names) applied; see :meth:`replace`."""
        return cls().replace(**options)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config", *, strict: bool = True) -> TrainConfig:
        """From sections (``{"model": {...}, ...}``, as :meth:`to_dict` writes) and/or flat option
        names (older run folders, short hand-written files). Unknown keys: ValueError naming them, or
        (``strict=False``, reading what another version wrote) left out."""
        return cls.of(**flat_options(values, source, strict=strict))

    @property
    def attention_weight(self) -> float:
        """λ: ``ga_weight`` if given, else 10 for ``dermx+`` and 0 for the other kinds."""
        if self.optim.ga_weight is not None:
            return self.optim.ga_weight
        return DERMX_PLUS_GA_WEIGHT if self.model.kind == "dermx+" else 0.0

    def replace(self, **options: Any) -> TrainConfig:
        """A copy with ``options`` (flat names) applied; ``None`` values are ignored (CLI options not
        given); ValueError for an unknown name. A ``recipe`` among them brings its values (:data:`RECIPES`)
        first; the other options given override them."""
        given = {k: v for k, v in options.items() if v is not None}
        if "recipe" in given:
            if given["recipe"] not in RECIPES:
                raise ValueError(f"unknown recipe {given['recipe']!r}; choose one of {sorted(RECIPES)}")
            given = {**RECIPES[given["recipe"]], **given}
        unknown = sorted(set(given) - set(OPTION_SECTION))
        if unknown:
            raise ValueError(f"unknown training option(s) {unknown}")
        changes = {section: dataclasses.replace(getattr(self, section),
                                                **{k: v for k, v in given.items() if OPTION_SECTION[k] == section})
                   for section in SECTIONS}
        return TrainConfig(**changes)

    def to_dict(self) -> dict[str, Any]:
        """``{"dataset": {...}, "model": {...}, "optim": {...}, "run": {...}}``."""
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict())


def flat_options(values: dict[str, Any], source: str = "config", *, strict: bool = True) -> dict[str, Any]:
    """Option values by flat name from sections (``{"model": {...}, ...}``) and/or flat names; names of
    :data:`RENAMED_OPTIONS` are read as their new names, with a warning. Unknown keys: ValueError naming
    them, or (``strict=False``) left out."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if key in SECTIONS and isinstance(value, dict):
            misplaced = sorted(k for k in value if OPTION_SECTION.get(RENAMED_OPTIONS.get(k) or k, key) != key)
            if misplaced and strict:
                raise ValueError(f"{source}: {', '.join(f'{k} belongs to {OPTION_SECTION[k]}' for k in misplaced)}"
                                 f", not {key}")
            flat.update(value)
        else:
            flat[key] = value
    for old in sorted(set(flat) & set(RENAMED_OPTIONS)):
        new = RENAMED_OPTIONS[old]
        warnings.warn(f"{source}: option {old!r} is now {new!r}; the old name is read for one more release",
                      DeprecationWarning, stacklevel=3)
        flat.setdefault(new, flat.pop(old))
    unknown = sorted(set(flat) - set(OPTION_SECTION))
    if unknown and strict:
        raise ValueError(f"{source}: unknown training option(s) {unknown}")
    return {k: v for k, v in flat.items() if k in OPTION_SECTION}


def load_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML or JSON file (sections or flat option names; or the defaults),
    then ``overrides`` (flat option names; ``None``: not given). A recipe named in either applies before
    both (the command line's recipe wins over the file's)."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: config file does not exist")
        text = path.read_text(encoding="utf-8")
        if path.suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text) or {}
        else:
            values = json.loads(text)
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of option names to values")
    from_file = flat_options(values, str(path) if path is not None else "config")
    return TrainConfig.of(**{**from_file, **{k: v for k, v in overrides.items() if v is not None}})
