"""Shareable checkpoints: ``model.safetensors`` (weights) + ``config.json`` (how to rebuild).

``config.json`` holds the :class:`~dermx.models.ModelConfig` (backbone, preset, kind, class and
characteristic names in order, normalisation, input size, CAM layer, training-data fingerprint, the
calibration fitted on the validation split, when there is one) and the dermx version.
:func:`load_checkpoint` rebuilds the network with random backbone weights, checks
every name and tensor shape, and loads the weights; it never needs the internet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save

from dermx import vocab
from dermx.atomic import write_bytes, write_text
from dermx.jsonio import strict_json
from dermx.models.dermx_net import DermXNet, ModelConfig
from dermx.version import __version__

if TYPE_CHECKING:
    from dermx.models.intervention import InterventionRule
    from dermx.trust.fitted import ModelCalibration

WEIGHTS_FILE = "model.safetensors"
#: The key of ``ModelConfig.calibration`` when training could not fit a calibration: the reason.
CALIBRATION_SKIPPED = "skipped"
CONFIG_FILE = "config.json"
FORMAT = "dermx-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that is missing, malformed, or does not match the model it describes."""


def save_checkpoint(model: DermXNet, directory: str | Path) -> Path:
    """Write ``model`` to ``directory`` (created), each file atomically (:mod:`dermx.atomic`); returns the
    directory."""
    directory = Path(directory)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_bytes(directory / WEIGHTS_FILE, save(state, metadata={"format": FORMAT}))
    document = {"format": FORMAT, "dermx_version": __version__, **model.config.to_dict()}
    if document["vocabulary"] == "dermxdb":  # the default: left out, so older dermx versions read the file
        del document["vocabulary"]
    if document["calibration"] is None:  # likewise: none recorded, the field left out
        del document["calibration"]
    if document["bottleneck_reads"] is None:  # likewise: not a cbm model
        del document["bottleneck_reads"]
    write_text(directory / CONFIG_FILE, strict_json(document))
    return directory


def _config_from(document: dict[str, Any], source: Path) -> ModelConfig:
    if document.get("format") != FORMAT:
        raise CheckpointError(f"{source}: not a dermx checkpoint (format {document.get('format')!r}, "
                              f"expected {FORMAT!r})")
    fields = set(ModelConfig.__dataclass_fields__)
    unknown = sorted(set(document) - fields - {"format", "dermx_version"})
    if unknown:
        raise CheckpointError(f"{source}: unknown config field(s) {unknown}")
    if document.get("kind") == "cbm" and "bottleneck_reads" not in document:
        document = {**document, "bottleneck_reads": "logits"}  # written before the choice: its head reads logits
    try:
        config = ModelConfig(**{k: document[k] for k in fields if k in document})
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{source}: {error}") from error
    for what, names in (("diagnosis classes", config.diagnoses), ("characteristics", config.characteristics)):
        if len(set(names)) != len(names) or not all(isinstance(n, str) and n.strip() for n in names):
            raise CheckpointError(f"{source}: {what} must be distinct non-empty names, got {list(names)}")
    if set(config.diagnoses) == set(vocab.DIAGNOSES) and tuple(config.diagnoses) != vocab.DIAGNOSES:
        raise CheckpointError(f"{source}: diagnosis classes {list(config.diagnoses)} are dermx's in another "
                              f"order; expected {list(vocab.DIAGNOSES)} (order matters)")
    try:
        model_calibration(config)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{source}: calibration: {error}") from error
    if config.interventions is not None:  # a broken record is named when the checkpoint loads, not at first use
        try:
            intervention_rule(config)
        except ValueError as error:
            raise CheckpointError(f"{source}: interventions: {error}") from error
    if config.vocabulary == "dermxdb":
        if tuple(config.diagnoses) != vocab.DIAGNOSES:
            raise CheckpointError(f"{source}: diagnosis classes {list(config.diagnoses)} differ from dermx's "
                                  f"{list(vocab.DIAGNOSES)} (a model of its own classes says \"vocabulary\": \"own\")")
        bad = [c for c in config.characteristics if c not in vocab.CHARACTERISTICS]
        if bad:
            raise CheckpointError(f"{source}: unknown characteristic name(s) {bad}")
    return config


def model_calibration(config: ModelConfig) -> ModelCalibration | None:
    """The calibration ``config`` records (:class:`~dermx.trust.fitted.ModelCalibration`), or ``None`` when it
    records none or one that training skipped (:func:`calibration_note` says why)."""
    record = config.calibration
    if record is None or CALIBRATION_SKIPPED in record:
        return None
    from dermx.trust.fitted import ModelCalibration

    return ModelCalibration.from_dict(record)


def calibration_note(config: ModelConfig) -> str:
    """Why a model has no calibration (empty when it has one)."""
    record = config.calibration
    if record is None:
        return "the checkpoint records no calibration (trained before dermx calibrated models, or not by dermx train)"
    if CALIBRATION_SKIPPED in record:
        return f"calibration was skipped in training: {record[CALIBRATION_SKIPPED]}"
    return ""


def intervention_rule(config: ModelConfig) -> InterventionRule:
    """The intervention rule ``config`` records; :class:`~dermx.models.intervention.InterventionError` when
    the model has no characteristics or its checkpoint records no rule (each says so)."""
    from dermx.models.intervention import InterventionError, InterventionRule

    if not config.characteristics:
        raise InterventionError("this model has no characteristics (a dx-only model): nothing to set")
    if config.interventions is None:
        raise InterventionError("the checkpoint records no intervention rule (trained before dermx recorded one, "
                                "or not by dermx train): retrain it to intervene on its characteristics")
    rule = InterventionRule.from_dict(config.interventions)
    if rule.characteristics != tuple(config.characteristics):
        raise InterventionError(f"the intervention rule names {list(rule.characteristics)}, the model "
                                f"{list(config.characteristics)}")
    return rule


#: The Lightning checkpoint of a training run that holds the same weights as its exported ``model/``.
BEST_LIGHTNING = "best.ckpt"


def checkpoint_dir(path: str | Path) -> Path:
    """The checkpoint folder ``path`` names: the folder itself (or a file in it), a training run
    (``RUN/model``), or the run's ``lightning/best.ckpt`` (exported as ``RUN/model``). The run's
    ``last.ckpt`` is refused: it is the last epoch, not the exported model."""
    path = Path(path)
    run = path.parent.parent if path.is_file() and path.parent.name == "lightning" else None
    if run is not None and path.name == BEST_LIGHTNING:
        path = run / "model"
    elif run is not None:
        raise CheckpointError(f"{path}: a Lightning checkpoint of an epoch, not the exported model; "
                              f"use {run / 'model'} (the selected epoch)")
    directory = path.parent if path.is_file() else path
    if (directory / "model" / CONFIG_FILE).is_file():  # a run folder (its own config.json is the run's)
        directory = directory / "model"
    if not (directory / CONFIG_FILE).is_file() or not (directory / WEIGHTS_FILE).is_file():
        raise CheckpointError(f"{path}: expected a checkpoint folder with {CONFIG_FILE} and {WEIGHTS_FILE}, "
                              "a training run folder, or its lightning/best.ckpt")
    return directory


def load_checkpoint(path: str | Path, *, map_location: str = "cpu") -> DermXNet:
    """Rebuild and load a model saved by :func:`save_checkpoint` (any path :func:`checkpoint_dir`
    accepts), in eval mode. Raises :class:`CheckpointError` saying which names or shapes do not match."""
    directory = checkpoint_dir(path)
    try:
        document = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    except ValueError as error:
        raise CheckpointError(f"{directory / CONFIG_FILE}: invalid JSON ({error})") from error
    config = _config_from(document, directory / CONFIG_FILE)
    try:
        model = DermXNet(config, pretrained=False)
    except ValueError as error:
        raise CheckpointError(f"{directory}: cannot rebuild the model: {error}") from error
    weights = directory / WEIGHTS_FILE
    try:
        state = load_file(str(weights), device=map_location)
    except (SafetensorError, OSError) as error:  # empty, truncated or unreadable file
        raise CheckpointError(f"{weights}: not a readable safetensors file ({error})") from error
    expected = model.state_dict()
    problems = [f"missing tensor {k!r}" for k in expected if k not in state]
    problems += [f"unexpected tensor {k!r}" for k in state if k not in expected]
    problems += [f"{k!r}: file has shape {tuple(state[k].shape)}, config implies {tuple(v.shape)}"
                 for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if problems:
        shown = "; ".join(problems[:6]) + (f"; ... {len(problems) - 6} more" if len(problems) > 6 else "")
        raise CheckpointError(f"{directory}: weights do not match config.json ({config.backbone}, "
                              f"kind {config.kind}, {len(config.characteristics)} characteristics): {shown}")
    model.load_state_dict(state)
    return model.eval()
