"""Training configuration: one dataclass, loadable from YAML or JSON, overridable from the CLI.

Defaults follow the original DermX training: AdamW (lr 5e-4), cosine annealing with warm restarts
(T0 = 3 epochs, T_mult = 3, eta_min = 1e-5), batch 32, guided-attention weight λ = 10 for ``dermx+``.

``ga_warmup_epochs`` (new here, not in the papers): λ ramps linearly from 0 to its value over the first
epochs (per optimisation step). From random weights the guided-attention gradient on the backbone is
~15-20× the cross-entropy one at the first step (measured on the synthetic set); without the ramp it
drives the features before they carry any class signal. 0 reproduces the papers (full λ at once).

Options for short from-scratch runs (new here; defaults keep the papers' recipe):

- ``lr_schedule``: ``restarts`` (the papers': cosine warm restarts T0/T_mult/eta_min, per epoch) or
  ``cosine`` (one cosine decay from ``lr`` to ``eta_min`` over the whole run, per step, after a linear
  warm-up of ``warmup_epochs`` from ``lr / 10``).
- ``color_jitter``: with ``augment``, also jitter colours (geometric flips / affine always apply).
- ``char_pos_weight``: BCE ``pos_weight`` of the characteristic logits; ``"balanced"`` gives each
  characteristic n_negative / n_positive of the TRAINING labels (clipped to [1, ``char_pos_weight_max``]),
  a number gives all the same weight, ``None`` none (the papers').
- ``channels_last``: train with NHWC tensors (``torch.channels_last``). On CPU it speeds up dilated
  backbones (output stride 8) about 2× and slows undilated ones at small inputs (measured in
  BENCHMARKS.md); the weights and results do not change beyond float rounding.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from dermx.data.fusion import FusionRule
from dermx.geometry import ResolutionPolicy, check_resolution
from dermx.models.dermx_net import ModelKind

LabelRule = Literal["any", "majority"]
DERMX_PLUS_GA_WEIGHT = 10.0


@dataclass
class TrainConfig:
    """Every knob of a training run. Paths may be strings; ``None`` means "not given"."""

    # data
    data: str | None = None
    images: str | None = None
    labels: str | None = None
    aliases: str | None = None
    require_all_images: bool = False
    fold: int | None = None
    n_folds: int = 10
    val_fraction: float = 0.15
    fusion: FusionRule = "mean"
    label_rule: LabelRule = "any"
    resolution: ResolutionPolicy = "pad"
    augment: bool = True
    color_jitter: bool = True
    cache_dir: str | None = None
    in_memory: bool = False
    num_workers: int = 0
    # model
    kind: ModelKind = "dermx"
    preset: str | None = "small"
    backbone: str | None = None
    characteristics: str | list[str] | None = None
    input_size: tuple[int, int] | None = None
    output_stride: int | None = None
    channels_last: bool = False
    dropout: float = 0.2
    pretrained: bool = True
    weights: str | None = None
    # optimisation
    epochs: int = 120
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 1e-2
    t0: int = 3
    t_mult: int = 3
    eta_min: float = 1e-5
    lr_schedule: Literal["restarts", "cosine"] = "restarts"
    warmup_epochs: float = 0.0
    char_pos_weight: Literal["balanced"] | float | None = None
    char_pos_weight_max: float = 10.0
    class_weights: dict[str, float] | None = None
    ga_weight: float | None = None
    ga_alpha: float = 0.5
    ga_smooth: float = 1.0
    ga_resolution: Literal["input", "features"] = "features"
    ga_warmup_epochs: float = 2.0
    seed: int = 0
    deterministic: bool = False
    early_stopping: int | None = None
    monitor: str = "val/loss"
    # run
    out: str = "runs/dermx"
    resume: bool = False
    accelerator: str = "auto"
    devices: str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    log_every_n_steps: int = 10
    progress: bool = True

    def __post_init__(self) -> None:
        if self.input_size is not None:
            self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
        if self.ga_warmup_epochs < 0:
            raise ValueError(f"ga_warmup_epochs must be >= 0, got {self.ga_warmup_epochs}")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if self.lr_schedule not in ("restarts", "cosine"):
            raise ValueError(f"lr_schedule must be 'restarts' or 'cosine', got {self.lr_schedule!r}")
        if isinstance(self.char_pos_weight, str) and self.char_pos_weight != "balanced":
            raise ValueError(f"char_pos_weight must be 'balanced', a number or None, got {self.char_pos_weight!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        check_resolution(self.resolution)

    @property
    def attention_weight(self) -> float:
        """λ: ``ga_weight`` if given, else 10 for ``dermx+`` and 0 for the other kinds."""
        if self.ga_weight is not None:
            return self.ga_weight
        return DERMX_PLUS_GA_WEIGHT if self.kind == "dermx+" else 0.0

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied; ``None`` values are ignored (CLI options not given)."""
        given = {k: v for k, v in changes.items() if v is not None}
        unknown = sorted(set(given) - {f.name for f in fields(self)})
        if unknown:
            raise ValueError(f"unknown training option(s) {unknown}")
        return dataclasses.replace(self, **given)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def load_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML or JSON file (or defaults), then ``overrides``."""
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
        unknown = sorted(set(values) - {f.name for f in fields(TrainConfig)})
        if unknown:
            raise ValueError(f"{path}: unknown training option(s) {unknown}")
    return TrainConfig(**values).replace(**overrides)
