"""Typed prediction results: ranked diagnoses, characteristics, explanation maps, JSON form."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dermx.geometry import Placement
from dermx.predict.trust import Trust


@dataclass(frozen=True)
class CharacteristicResult:
    """One characteristic: sigmoid probability and whether it passes the threshold."""

    name: str
    probability: float
    present: bool


@dataclass(frozen=True)
class Features:
    """One image's pass kept for interventions (:meth:`~dermx.predict.Predictor.run` with ``keep``,
    :meth:`~dermx.predict.Predictor.intervene`): the pooled features ``(1, C)`` the heads read and, when kept,
    the CAM-layer activations ``(1, K, h, w)`` (the maps of an intervention follow from them and the heads
    alone, when that layer is what the heads pool; ``note`` says why they are ``None`` otherwise); the
    image's name, placement in the model input, skin tone and target risk of abstention."""

    name: str
    placement: Placement
    pooled: torch.Tensor
    activations: torch.Tensor | None
    skin_tone: str | None = None
    abstain_risk: float | None = None
    note: str = ""

    @property
    def nbytes(self) -> int:
        """Bytes of its tensors: ``4 (C + K h w)`` in float32."""
        return sum(t.element_size() * t.nelement() for t in (self.pooled, self.activations) if t is not None)


@dataclass(frozen=True)
class Intervention:
    """Characteristics a user set and what it changed (:mod:`dermx.models.intervention`): ``settings``
    (name -> present), ``logits`` the logit each set characteristic took (the checkpoint's rule),
    ``before`` the diagnoses as ranked without the setting (same image, same pass), ``change`` per class
    the probability with the setting minus without."""

    settings: dict[str, bool]
    logits: dict[str, float]
    before: list[tuple[str, float]]
    change: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"set": {n: "present" if v else "absent" for n, v in self.settings.items()}, "logits": self.logits,
                "before": [{"name": n, "probability": p} for n, p in self.before], "change": self.change}


@dataclass(frozen=True)
class Prediction:
    """What the model says about one image.

    ``diagnoses`` are ``(name, softmax probability)`` ranked best first (the calibrated probabilities when
    the model carries a calibration: ``trust``, :mod:`dermx.predict.trust`); ``characteristics`` follow
    the model's order. ``maps`` maps a target label (``"diagnosis:Psoriasis"``,
    ``"characteristic:Plaque"``) to its explanation on the model input, ``(H, W)`` float32 in
    ``[0, 1]``: the top diagnosis, then every present characteristic. :meth:`original_map` brings a
    map back to the original image geometry through ``placement``. ``logits`` holds each map's target
    logit and ``layer`` the layer the maps were computed on. With characteristics set by the user
    (``intervention``), everything shown is with the setting: diagnoses, characteristics and the diagnosis
    map; a set characteristic has no map (its logit is a constant). ``features``: the pass kept for
    interventions when :meth:`~dermx.predict.Predictor.run` was asked to (``keep``), else ``None``.
    """

    source: str
    diagnoses: list[tuple[str, float]]
    characteristics: list[CharacteristicResult]
    maps: dict[str, np.ndarray]
    input_size: tuple[int, int]
    placement: Placement
    threshold: float
    method: str
    logits: dict[str, float] = field(default_factory=dict)
    layer: str = ""
    trust: Trust = field(default_factory=lambda: Trust(False, "the model carries no calibration"))
    intervention: Intervention | None = None
    features: Features | None = field(default=None, repr=False, compare=False)

    @property
    def diagnosis(self) -> str:
        """The top-ranked diagnosis."""
        return self.diagnoses[0][0]

    @property
    def present(self) -> list[str]:
        """Names of the characteristics predicted present."""
        return [c.name for c in self.characteristics if c.present]

    @property
    def original_size(self) -> tuple[int, int]:
        """``(h, w)`` of the image after EXIF orientation."""
        return self.placement.original

    def probability(self, label: str) -> float | None:
        """The probability of a map's target (``"diagnosis:Psoriasis"``, ``"characteristic:Plaque"``);
        ``None`` for a label of neither head."""
        head, _, name = label.partition(":")
        if head == "diagnosis":
            return dict(self.diagnoses).get(name)
        if head == "characteristic":
            return next((c.probability for c in self.characteristics if c.name == name), None)
        return None

    def original_map(self, label: str, size: tuple[int, int] | None = None) -> np.ndarray:
        """Map ``label`` on the original image geometry (or at ``size``, same framing), float32.

        ``label`` is a map label (``"characteristic:Plaque"``) or, when exactly one map has that target
        name, the bare name (``"Plaque"``)."""
        if label not in self.maps:
            matches = [m for m in self.maps if m.partition(":")[2] == label]
            if len(matches) != 1:
                why = f"{label!r} is ambiguous ({matches})" if matches else f"no map {label!r}"
                raise KeyError(f"{why}; maps: {list(self.maps)}")
            (label,) = matches
        return self.placement.restore(torch.from_numpy(self.maps[label]), size).numpy()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (map labels, not map values); ``diagnosis`` is ``None`` when the prediction
        abstains (its ``reason`` names the diagnosis set), the ranked ``diagnoses`` stay."""
        return {
            "source": self.source,
            "diagnosis": None if self.trust.abstain else self.diagnosis,
            "diagnoses": [{"name": n, "probability": p} for n, p in self.diagnoses],
            "characteristics": [{"name": c.name, "probability": c.probability, "present": c.present}
                                for c in self.characteristics],
            "threshold": self.threshold,
            "method": self.method,
            "maps": list(self.maps),
            "input_size": list(self.input_size),
            "image_size": list(self.original_size),
            **self.trust.to_dict(),
            "intervention": None if self.intervention is None else self.intervention.to_dict(),
        }
