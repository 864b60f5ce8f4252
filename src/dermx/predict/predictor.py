"""The :class:`Predictor`: a model (or checkpoint) turned into ranked diagnoses, characteristics and maps.

One batch = one CAM-engine pass: the engine's forward pass gives the logits (softmax for the
diagnoses, sigmoid for the characteristics) and the maps of every target on exactly the preprocessed
model input; the maps kept are the top diagnosis and the present characteristics.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from dermx.explain import CamEngine
from dermx.models import DermXNet, load_checkpoint
from dermx.models.checkpoint import WEIGHTS_FILE, dermx_version
from dermx.predict.io import ImageSource, Placement, as_array, open_image, preprocess
from dermx.predict.result import CharacteristicResult, Prediction
from dermx.train.config import ResolutionPolicy
from dermx.train.datasets import joint_transform


@dataclass(frozen=True)
class PreparedImage:
    """An opened image, its model input ``(3, H, W)`` and where it sits in that input."""

    name: str
    image: Image.Image
    tensor: torch.Tensor
    placement: Placement


def weights_file(checkpoint: str | Path) -> Path:
    """The weights file of a checkpoint given as its folder or as a file in it."""
    path = Path(checkpoint)
    return (path if path.is_dir() else path.parent) / WEIGHTS_FILE


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class Predictor:
    """Diagnose and explain images with a DermX-family model.

    Args:
        model: a :class:`~dermx.models.DermXNet` or a checkpoint folder (or a file in it).
        method: CAM method (see :mod:`dermx.explain.methods`).
        threshold: a characteristic is present when its sigmoid probability is ≥ ``threshold``.
        resolution: how images are fitted to the input size, as in training (``pad`` by default;
            checkpoints do not record it yet).
        batch_size: images per forward pass in :meth:`predict`.
    """

    def __init__(self, model: DermXNet | str | Path, *, method: str = "gradcam", threshold: float = 0.5,
                 resolution: ResolutionPolicy = "pad", batch_size: int = 8) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.checkpoint = None if isinstance(model, torch.nn.Module) else Path(model)
        self.model = load_checkpoint(model) if self.checkpoint is not None else model.eval()  # type: ignore[arg-type]
        #: SHA-256 of the checkpoint's weights file (``None`` for an in-memory model).
        self.fingerprint = sha256_of(weights_file(self.checkpoint)) if self.checkpoint is not None else None
        config = self.model.config
        self.method = method
        self.threshold = threshold
        self.resolution = resolution
        self.batch_size = batch_size
        self.engine = CamEngine(self.model, method, size="input")
        self.transform = joint_transform(config.input_size, config.mean, config.std, augment=False)

    def prepare(self, source: ImageSource, name: str | None = None) -> PreparedImage:
        """Open and preprocess one image; ``DermXDBError`` naming the file if it cannot be read."""
        image, label = open_image(source, name)
        tensor, placement = preprocess(image, self.model.config.input_size, self.transform, self.resolution)
        return PreparedImage(label, image, tensor, placement)

    def run(self, batch: Sequence[PreparedImage]) -> list[Prediction]:
        """Predict one batch of prepared images in a single engine pass."""
        if not batch:
            return []
        result = self.engine(torch.stack([p.tensor for p in batch]))
        logits = result.logits
        diagnosis = torch.softmax(logits["diagnosis"], dim=1).cpu()
        characteristic = torch.sigmoid(logits["characteristic"]).cpu() if "characteristic" in logits else None
        labels = result.labels
        maps = result.maps.cpu()
        return [self._prediction(item, diagnosis[i], None if characteristic is None else characteristic[i],
                                 labels, maps[i]) for i, item in enumerate(batch)]

    def predict(self, images: Sequence[ImageSource]) -> list[Prediction]:
        """Predict images (PIL images, paths or file bytes), ``batch_size`` at a time."""
        predictions: list[Prediction] = []
        for chunk in _chunks(images, self.batch_size):
            predictions += self.run([self.prepare(source) for source in chunk])
        return predictions

    def _prediction(self, item: PreparedImage, diagnosis: torch.Tensor, characteristic: torch.Tensor | None,
                    labels: tuple[str, ...], maps: torch.Tensor) -> Prediction:
        names = self.model.target_names
        order = torch.argsort(diagnosis, descending=True, stable=True).tolist()
        ranked = [(names["diagnosis"][k], float(diagnosis[k])) for k in order]
        characteristics = [] if characteristic is None else [
            CharacteristicResult(name, float(p), float(p) >= self.threshold)
            for name, p in zip(names["characteristic"], characteristic.tolist(), strict=True)]
        wanted = [f"diagnosis:{ranked[0][0]}"] + [f"characteristic:{c.name}" for c in characteristics if c.present]
        kept = {label: as_array(maps[labels.index(label)]) for label in wanted}
        return Prediction(item.name, ranked, characteristics, kept, tuple(self.model.config.input_size),
                          item.placement, self.threshold, self.method)

    def model_info(self) -> dict[str, Any]:
        """Names, versions and the checkpoint fingerprint (SHA-256 of the weights file)."""
        config = self.model.config
        return {
            "backbone": config.backbone, "kind": config.kind, "preset": config.preset,
            "input_size": list(config.input_size), "diagnoses": list(config.diagnoses),
            "characteristics": list(config.characteristics), "cam_layer": config.cam_layer,
            "method": self.method, "threshold": self.threshold, "resolution": self.resolution,
            "dermx_version": dermx_version(), "training_data": config.training_data,
            "checkpoint": None if self.checkpoint is None else {
                "name": weights_file(self.checkpoint).parent.name, "sha256": self.fingerprint},
        }
