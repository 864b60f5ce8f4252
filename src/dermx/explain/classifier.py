"""A user's own timm classifier for ``dermx explain``: outputs, class names and default targets.

:func:`load_classifier` builds the timm architecture with as many outputs as the weight file's
classifier layer has (timm's ``pretrained_cfg.classifier`` names that layer: ``fc``, ``head.fc``,
``classifier``, ...), or ``num_classes`` when given (checked against the file). Class names come from
a text file (one name a line) or from the checkpoint itself: a ``class_names`` (or ``classes``) list
beside the state dict of a torch file, or a ``class_names`` JSON list in a safetensors file's metadata.

:func:`explain_top_k` explains each image's own ``k`` most probable classes (the default of
``dermx explain`` for a plain classifier) with one CAM pass per batch.

:class:`ClassifierNet` presents a loaded classifier as a ``dx-only`` DermX model (one ``diagnosis``
head named by the class names, a :class:`~dermx.models.ModelConfig`), so that ``dermx predict`` and
``dermx serve`` take ``--model NAME --weights FILE`` as ``dermx explain`` does: ranked classes and the
top class's map, no characteristics. Images are fitted to its input by ``squash``, as in explain.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dermx.compute import full_precision, model_device
from dermx.explain.engine import CamEngine
from dermx.explain.layers import default_layer_name
from dermx.geometry import InputSpec
from dermx.models.dermx_net import DermXNet, ModelConfig
from dermx.models.weights import WeightsError, map_state_dict, read_state_dict, sha256_of

_NAME_KEYS: tuple[str, ...] = ("class_names", "classes")


@dataclass(frozen=True)
class Classifier:
    """A timm classifier ready to explain, with its preprocessing and (optional) class names."""

    model: nn.Module
    spec: InputSpec
    class_names: tuple[str, ...] | None
    weights: Path | None


def read_class_names(path: str | Path) -> tuple[str, ...]:
    """Class names from a text file, one a line in output order (blank lines ignored)."""
    path = Path(path)
    names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if not names:
        raise ValueError(f"{path}: no class names (expected one name a line)")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{path}: class name(s) listed twice: {repeated}")
    return names


def checkpoint_class_names(path: str | Path) -> tuple[str, ...] | None:
    """Class names stored in a weight file (module docstring), or ``None``."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            text = (handle.metadata() or {}).get("class_names")
        return tuple(json.loads(text)) if text else None
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(loaded, Mapping):
        for key in _NAME_KEYS:
            names = loaded.get(key)
            if isinstance(names, list | tuple) and names and all(isinstance(n, str) for n in names):
                return tuple(names)
    return None


def classifier_width(state: Mapping[str, Tensor], architecture: str) -> int | None:
    """Outputs of the classifier layer in ``state`` (a state dict of timm ``architecture``), or ``None``."""
    import timm

    cfg = timm.models.get_pretrained_cfg(architecture)
    layer = getattr(cfg, "classifier", None) if cfg is not None else None
    if not layer:
        return None
    for key, tensor in state.items():
        if key.endswith(f"{layer}.weight") and key.removesuffix(f"{layer}.weight") in ("", "module.", "model."):
            return int(tensor.shape[0])
    return None


def load_classifier(architecture: str, weights: str | Path | None = None, *, num_classes: int | None = None,
                    class_names: Sequence[str] | None = None) -> Classifier:
    """The timm ``architecture`` with ``weights`` loaded (module docstring). ``WeightsError`` names the
    file and the mismatch; ``ValueError`` when the class names do not fit the outputs."""
    import timm

    if not timm.is_model(architecture):
        raise ValueError(f"{architecture!r} is neither a checkpoint file nor a timm model name")
    state = read_state_dict(weights) if weights is not None else None
    width = classifier_width(state, architecture) if state is not None else None
    if num_classes is not None and width is not None and num_classes != width:
        raise WeightsError(f"{weights}: the classifier layer has {width} outputs, --n-classes says {num_classes}")
    names = tuple(class_names) if class_names is not None else (
        checkpoint_class_names(weights) if weights is not None else None)
    outputs = num_classes or width or (len(names) if names else None)
    options: dict[str, Any] = {"num_classes": outputs} if outputs else {}
    model = timm.create_model(architecture, pretrained=False, **options)
    if state is not None:
        try:
            model.load_state_dict(map_state_dict(state, model))
        except WeightsError as error:
            raise WeightsError(f"{weights}: {error}") from error
    head = model.get_classifier()  # type: ignore[operator]  # timm's models are typed nn.Module
    n_out = head.out_features if hasattr(head, "out_features") else outputs
    if names is not None and n_out is not None and len(names) != n_out:
        raise ValueError(f"{len(names)} class names for a classifier with {n_out} outputs")
    data = timm.data.resolve_data_config({}, model=model)
    spec = InputSpec(tuple(data["input_size"][1:]), tuple(data["mean"]), tuple(data["std"]), "squash")
    return Classifier(model.eval(), spec, names, Path(weights) if weights is not None else None)


@dataclass(frozen=True)
class TopK:
    """Each image's ``k`` most probable classes: maps ``(B, k, h, w)``, labels, logits and softmax
    probabilities ``(B, k)``."""

    maps: Tensor
    labels: list[list[str]]
    logits: Tensor
    layer: str
    probabilities: Tensor


def explain_top_k(engine: CamEngine, images: Tensor, k: int = 1) -> TopK:
    """Explain each image's own top-``k`` classes: one forward pass picks them, one CAM pass explains
    the union of the batch's picks, then each image keeps its own (most probable first). Both passes run on
    the model's device at the engine's precision; the logits and probabilities are in full precision
    (:func:`~dermx.compute.full_precision`)."""
    if k < 1:
        raise ValueError(f"top-k must be >= 1, got {k}")
    with torch.no_grad(), engine.autocast():
        logits = engine.model(images.to(model_device(engine.model)))
    if not isinstance(logits, Tensor):
        raise ValueError("explain_top_k needs a plain classifier (one logit tensor)")
    logits = full_precision(logits)
    k = min(k, logits.shape[1])
    picks = logits.topk(k, dim=1).indices.tolist()
    columns = sorted({c for row in picks for c in row})
    result = engine(images, columns)
    where = [[columns.index(c) for c in row] for row in picks]
    index = torch.tensor(where)
    maps = torch.stack([result.maps[i, index[i]] for i in range(len(picks))])
    chosen_logits = torch.stack([result.target_logits[i, index[i]] for i in range(len(picks))])
    labels = [[result.labels[j] for j in row] for row in where]
    probabilities = logits.softmax(dim=1).gather(1, torch.tensor(picks, device=logits.device))
    return TopK(maps, labels, chosen_logits, result.layer, probabilities)


class ClassifierNet(nn.Module):
    """A plain classifier in the DermX model protocol (module docstring): ``forward`` returns
    ``{"diagnosis": logits}``; ``config`` is a ``dx-only`` :class:`~dermx.models.ModelConfig` whose
    diagnoses are the class names (``"0"``, ``"1"``, ... without names, as explain labels them), whose CAM
    layer is the classifier's default one (:func:`~dermx.explain.layers.default_layer_name`) and whose
    ``training_data`` names the weight file and its SHA-256; ``weights_file`` is that file."""

    def __init__(self, classifier: Classifier, architecture: str) -> None:
        super().__init__()
        self.model = classifier.model
        example = torch.zeros(1, 3, *classifier.spec.size)
        with torch.no_grad():
            width = int(self.model(example).shape[1])
        names = classifier.class_names or tuple(str(i) for i in range(width))
        self.weights_file = classifier.weights
        record = {} if classifier.weights is None else {
            "weights": {"file": classifier.weights.name, "sha256": sha256_of(classifier.weights)}}
        spec = classifier.spec
        self.config = ModelConfig(backbone=architecture, kind="dx-only", input_size=spec.size,
                                  mean=spec.mean, std=spec.std,  # type: ignore[arg-type]  # timm: 3 channels
                                  cam_layer=f"model.{default_layer_name(self.model, example)}",
                                  diagnoses=names, characteristics=(), resolution=spec.policy,
                                  training_data=record, vocabulary="own")
        self.target_names: dict[str, tuple[str, ...]] = {"diagnosis": names}
        self.eval()

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        return {"diagnosis": self.model(images)}

    probabilities = staticmethod(DermXNet.probabilities)
