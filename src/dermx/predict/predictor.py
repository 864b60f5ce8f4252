"""The :class:`Predictor`: a model (or checkpoint) turned into ranked diagnoses, characteristics and maps.

One batch = one CAM-engine pass: the engine's forward pass gives the logits (softmax for the
diagnoses, sigmoid for the characteristics) and the maps of every target on exactly the preprocessed
model input; the maps kept are the top diagnosis and the present characteristics. A checkpoint that
carries a calibration gives calibrated diagnosis probabilities, a diagnosis set and, with a target risk,
an abstention (:mod:`dermx.predict.trust`). A pass kept with ``run(..., keep=...)`` (pooled features, and
CAM-layer activations) is answered again with characteristics set by :meth:`Predictor.intervene`: the
heads alone, no image and no backbone (the service's interventions, :mod:`dermx.serve.app`).

Where it computes (``compute``, :class:`~dermx.compute.Compute`): the model is moved to the device and the
engine's passes run at the precision; the heads of an intervention run in float32 on the device. Every
probability, logit and map of a :class:`~dermx.predict.result.Prediction` is float32 on the CPU.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from dermx.compute import Compute, full_precision
from dermx.explain import CamEngine, CamResult
from dermx.explain.maps import finalize
from dermx.explain.methods import method_title
from dermx.geometry import (
    InputSpec,
    Placement,
    ResolutionPolicy,
    check_resolution,
    display_size,
    joint_transform,
    preprocess,
)
from dermx.models import DermXNet, load_checkpoint
from dermx.models.checkpoint import (
    WEIGHTS_FILE,
    calibration_note,
    checkpoint_dir,
    intervention_rule,
    model_calibration,
)
from dermx.models.intervention import intervened
from dermx.models.weights import sha256_of
from dermx.predict.io import ImageSource, as_array, open_image
from dermx.predict.result import CharacteristicResult, Features, Intervention, Prediction
from dermx.predict.trust import Trust, answers
from dermx.train.provenance import training_summary
from dermx.version import __version__

#: What :meth:`Predictor.run` keeps of each image for :meth:`Predictor.intervene`: its pooled features, or
#: those and its CAM-layer activations (:class:`~dermx.predict.result.Features`).
Keep = Literal["pooled", "activations"]


@dataclass(frozen=True)
class PreparedImage:
    """An opened image (or its display-sized copy: :meth:`Predictor.prepare`), its model input ``(3, H, W)``
    and where it sits in that input (of the image as decoded); the image's ``skin_tone`` and the target
    risk of abstention asked for it (``None``: not given, none asked)."""

    name: str
    image: Image.Image
    tensor: torch.Tensor
    placement: Placement
    skin_tone: str | None = None
    abstain_risk: float | None = None


class UncalibratedError(ValueError):
    """A calibration option (``skin_tone``, ``abstain_risk``: :attr:`option`) given for a model without a
    calibration, where it would have no effect."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


def weights_file(checkpoint: str | Path) -> Path:
    """The weights file of a checkpoint (any path :func:`~dermx.models.checkpoint.checkpoint_dir` accepts)."""
    return checkpoint_dir(checkpoint) / WEIGHTS_FILE


def prepare_image(spec: InputSpec, transform: v2.Transform, source: ImageSource, name: str | None = None, *,
                  min_side: int | None = None, display_max: int | None = None, skin_tone: str | None = None,
                  abstain_risk: float | None = None) -> PreparedImage:
    """:meth:`Predictor.prepare` without the trust check, for the input ``spec`` and its ``transform``
    (:func:`~dermx.geometry.joint_transform`)."""
    image, label = open_image(source, name, min_side=min_side)
    tensor, placement = preprocess(image, spec.size, transform, spec.policy)
    if display_max is not None:
        size = display_size(placement.original, display_max)
        if size != placement.original:
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return PreparedImage(label, image, tensor, placement, skin_tone, abstain_risk)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class Predictor:
    """Diagnose and explain images with a DermX-family model.

    Args:
        model: a :class:`~dermx.models.DermXNet` (or another model of its protocol, such as
            :class:`~dermx.explain.classifier.ClassifierNet`) or a checkpoint folder (or a file in it).
        method: CAM method (see :mod:`dermx.explain.methods`).
        threshold: a characteristic is present when its sigmoid probability is ≥ ``threshold``.
        resolution: how images are fitted to the input size; default: the policy the model was
            trained with (``model.config.resolution``).
        batch_size: images per forward pass in :meth:`predict`.
        skin_tone: the skin tone of the images (the calibration group), when known; default for
            :meth:`prepare`.
        abstain_risk: abstain when the calibrated top probability is below the validation threshold
            for this target risk; default for :meth:`prepare`. Both need a calibrated model.
        compute: device and precision (module docstring); default :class:`~dermx.compute.Compute`'s (the
            accelerator if any, float32). The model is moved there in place.
    """

    def __init__(self, model: DermXNet | str | Path, *, method: str = "gradcam", threshold: float = 0.5,
                 resolution: ResolutionPolicy | None = None, batch_size: int = 8, skin_tone: str | None = None,
                 abstain_risk: float | None = None, compute: Compute | None = None) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if resolution is not None:
            check_resolution(resolution)
        self.checkpoint = Path(model) if isinstance(model, str | Path) else None
        self.model = load_checkpoint(model) if isinstance(model, str | Path) else model.eval()
        #: Where the model runs, and at which precision.
        self.compute = compute or Compute()
        self.compute.place(self.model)
        #: The weights file: the checkpoint's, or the file a classifier was loaded from (``weights_file`` of
        #: :class:`~dermx.explain.classifier.ClassifierNet`); ``None`` for an in-memory model.
        self.weights: Path | None = (weights_file(self.checkpoint) if self.checkpoint is not None
                                     else getattr(self.model, "weights_file", None))
        #: SHA-256 of :attr:`weights` (``None`` without a file).
        self.fingerprint = sha256_of(self.weights) if self.weights is not None else None
        config = self.model.config
        #: The calibration the checkpoint carries (``None``: uncalibrated, :attr:`calibration_note` says why).
        self.calibration = model_calibration(config)
        self.calibration_note = ("a timm classifier (--model NAME) carries no calibration"
                                 if self.checkpoint is None and self.weights is not None else calibration_note(config))
        self.check_trust(skin_tone, abstain_risk)
        self.skin_tone, self.abstain_risk = skin_tone, abstain_risk
        self.method = method
        self.threshold = threshold
        #: How this predictor fits an image to the model input (the model's own policy unless overridden).
        self.spec = replace(config.input_spec, policy=resolution or config.resolution)
        self.batch_size = batch_size
        # maps at the feature grid; only the kept ones are brought to the input size (see ``run``)
        self.engine = CamEngine(self.model, method, size="features", precision=self.compute.precision)
        self.transform = joint_transform(self.spec.size, self.spec.mean, self.spec.std, augment=False)
        # one pass at a time: a pass and an intervention hook the same model (the service runs both at once)
        self._lock = threading.Lock()

    def check_trust(self, skin_tone: str | None, abstain_risk: float | None) -> None:
        """:class:`UncalibratedError` naming ``skin_tone`` / ``abstain_risk`` when given for an uncalibrated
        model (they would have no effect); ``ValueError`` for a risk outside [0, 1]."""
        for name, value in (("skin_tone", skin_tone), ("abstain_risk", abstain_risk)):
            if value is not None and self.calibration is None:
                raise UncalibratedError(name, f"{name} needs a calibrated model: {self.calibration_note}")
        if abstain_risk is not None and not 0.0 <= abstain_risk <= 1.0:
            raise ValueError(f"abstain_risk must be in [0, 1], got {abstain_risk}")

    def prepare(self, source: ImageSource, name: str | None = None, *, min_side: int | None = None,
                display_max: int | None = None, skin_tone: str | None = None,
                abstain_risk: float | None = None) -> PreparedImage:
        """Open and preprocess one image; ``DermXDBError`` naming the file if it cannot be read.

        ``min_side``: decode a large file at a reduced scale whose shorter side stays ≥ ``min_side``
        (the service's memory bound); the image and its placement are then those of the reduced image.
        ``display_max``: keep only a copy of the image whose longest side is at most ``display_max`` (what
        figures and the page show), so a large photograph is not held at full size while it waits.
        ``skin_tone``, ``abstain_risk``: this image's (default: the predictor's; :meth:`check_trust`).
        """
        self.check_trust(skin_tone, abstain_risk)
        return prepare_image(self.spec, self.transform, source, name, min_side=min_side, display_max=display_max,
                             skin_tone=skin_tone if skin_tone is not None else self.skin_tone,
                             abstain_risk=abstain_risk if abstain_risk is not None else self.abstain_risk)

    def preparer(self, display_max: int | None = None) -> Callable[[ImageSource], PreparedImage]:
        """:meth:`prepare` of one source with this predictor's defaults, as a function that a data-loading
        worker process can run (it holds the input spec and transform, not the model)."""
        return functools.partial(prepare_image, self.spec, self.transform, display_max=display_max,
                                 skin_tone=self.skin_tone, abstain_risk=self.abstain_risk)

    def intervention_values(self, settings: Mapping[str, bool]) -> dict[int, float]:
        """``{characteristic column: logit}`` of ``settings`` under the checkpoint's rule
        (:class:`~dermx.models.intervention.InterventionError` for unknown names, a dx-only model, or a
        checkpoint without a rule)."""
        return intervention_rule(self.model.config).values(settings)

    def _diagnoses(self, logits: torch.Tensor, batch: Sequence[PreparedImage | Features]
                   ) -> tuple[torch.Tensor, list[Trust]]:
        """Diagnosis probabilities (calibrated when the model is) and each image's trust record."""
        logits = logits.float().cpu()
        if self.calibration is None:
            return logits.softmax(dim=1), [Trust(False, self.calibration_note) for _ in batch]
        return answers(self.calibration, logits, self.model.target_names["diagnosis"], [p.skin_tone for p in batch],
                       [p.abstain_risk for p in batch])

    def run(self, batch: Sequence[PreparedImage], set_characteristics: Mapping[str, bool] | None = None, *,
            keep: Keep | None = None) -> list[Prediction]:
        """Predict one batch of prepared images in a single engine pass; with ``set_characteristics``
        (name -> present) the characteristics are set by :mod:`dermx.models.intervention`'s rule during the
        pass, and each prediction's ``intervention`` holds the diagnoses without the setting (the heads
        recomputed from the same pooled features: no second backbone pass) and the change.

        ``keep``: each prediction's ``features`` keep its pooled features (``"pooled"``), and with
        ``"activations"`` its CAM-layer activations too, for :meth:`intervene` (a copy per image, so that
        one kept image does not hold its whole batch)."""
        if not batch:
            return []
        settings = dict(set_characteristics or {})
        values = self.intervention_values(settings) if settings else {}
        pooled: list[torch.Tensor] = []
        with self._lock:
            with contextlib.ExitStack() as stack:
                if settings:
                    stack.enter_context(intervened(self.model, values))
                if settings or keep:
                    hook = self.model.pool.register_forward_hook(
                        lambda _m, _i, out: pooled.append(full_precision(out.detach())))
                    stack.callback(hook.remove)
                result = self.engine(torch.stack([p.tensor for p in batch]))
            features = pooled[0].flatten(1) if pooled else None
            plain = self._plain(features) if settings else None
        assert isinstance(result.logits, dict)
        kept: list[Features | None] = self._kept(batch, result, features, keep) if keep else [None] * len(batch)
        return self._predictions(batch, result.logits, result, settings, values, plain, kept)

    def intervene(self, features: Features, set_characteristics: Mapping[str, bool]) -> Prediction:
        """The prediction of the image ``features`` were kept from (:meth:`run` with ``keep``) with its
        characteristics set (name -> present; none: the model's own answer), recomputed by the heads from its
        pooled features alone: no image, no backbone pass. Diagnoses (calibrated when the model is, with the
        image's skin tone and risk), characteristics and ``intervention`` are those :meth:`run` gives with the
        same setting, and so is the map of the top diagnosis when the CAM-layer activations were kept
        (:meth:`~dermx.explain.CamEngine.explain_pooled`, for that one target), else there is none
        (``features.note`` says why). There are no characteristic maps: a setting changes no other
        characteristic's logit, so their maps are the kept prediction's.
        :class:`~dermx.models.intervention.InterventionError` for a setting the model cannot take."""
        settings = dict(set_characteristics)
        values = self.intervention_values(settings)
        result = None
        with self._lock:
            plain = self._plain(features.pooled)
            with intervened(self.model, values):
                with torch.no_grad():
                    logits = self.model.heads(features.pooled)
                if features.activations is not None:
                    probabilities, _ = self._diagnoses(logits["diagnosis"], [features])
                    top = self._ranked(probabilities[0])[0][0]
                    result = self.engine.explain_pooled(features.activations, self.spec.size, [("diagnosis", top)])
        return self._predictions([features], logits, result, settings, values, plain, [None])[0]

    def _plain(self, pooled: torch.Tensor | None) -> torch.Tensor:
        """Diagnosis logits of the heads on ``pooled`` features without any setting."""
        assert pooled is not None, "the pooled features of the pass were not recorded"
        with torch.no_grad():
            return self.model.heads(pooled)["diagnosis"]

    def _kept(self, batch: Sequence[PreparedImage], result: CamResult, pooled: torch.Tensor | None,
              keep: Keep) -> list[Features | None]:
        """Each image's :class:`Features` from the pass (``keep``: with its CAM-layer activations, when
        :meth:`intervene` can compute maps from them)."""
        assert pooled is not None, "the pooled features of the pass were not recorded"
        activations, note = None, "CAM-layer activations were not kept"
        if keep == "activations":
            if self.engine.method.uses_scores:
                note = (f"{method_title(self.method)} scores masked images through the backbone: an intervention "
                        "has no map without a new pass")
            elif result.activations is None:
                note = f"the CAM layer {result.layer} is not what the heads pool: its maps need a backbone pass"
            else:
                activations, note = result.activations, ""
        return [Features(p.name, p.placement, pooled[i:i + 1].clone(),
                         None if activations is None else activations[i:i + 1].clone(), p.skin_tone,
                         p.abstain_risk, note) for i, p in enumerate(batch)]

    def _predictions(self, items: Sequence[PreparedImage | Features], logits: dict[str, torch.Tensor],
                     result: CamResult | None, settings: dict[str, bool], values: dict[int, float],
                     plain: torch.Tensor | None, kept: list[Features | None]) -> list[Prediction]:
        """Predictions from a pass's ``logits`` and maps (``result``; ``None``: no maps): those of the top
        diagnosis and of the present characteristics not set, of the targets ``result`` has; with ``plain``,
        the diagnosis logits without ``settings``, each holds the :class:`Intervention`."""
        logits = {head: value.detach().float().cpu() for head, value in logits.items()}
        characteristic = self.model.probabilities(logits).characteristic
        diagnosis, trust = self._diagnoses(logits["diagnosis"], items)
        ranked = [self._ranked(d) for d in diagnosis]
        found = [self._characteristics(c) for c in characteristic] if "characteristic" in logits else [
            [] for _ in items]
        changes: list[Intervention | None] = [None] * len(items)
        if plain is not None:
            before, _ = self._diagnoses(plain, items)
            names = self.model.target_names["diagnosis"]
            set_logits = {name: values[self.model.target_names["characteristic"].index(name)] for name in settings}
            changes = [Intervention(settings, set_logits, self._ranked(before[i]),
                                    {n: float(diagnosis[i, k] - before[i, k]) for k, n in enumerate(names)})
                       for i in range(len(items))]
        labels = [[label for label in (f"diagnosis:{r[0][0]}", *(f"characteristic:{c.name}" for c in chars
                                                                  if c.present and c.name not in settings))
                   if result is not None and label in result.labels] for r, chars in zip(ranked, found, strict=True)]
        maps: list[dict[str, np.ndarray]] = [{} for _ in items]
        if result is not None:
            # Upsampling all 22 maps to the input size was most of predict's overhead over the forward
            # pass; only the top diagnosis and the present characteristics are kept, so only those are
            # finished, in one call: the engine's own min-max → bilinear → min-max.
            rows = torch.tensor([i for i, k in enumerate(labels) for _ in k], dtype=torch.long)
            cols = torch.tensor([result.labels.index(label) for k in labels for label in k], dtype=torch.long)
            finished = finalize(result.maps[rows, cols][:, None], self.spec.size, relu=False,
                                normalize=True, eps=self.engine.eps, interpolation="bilinear")[:, 0].cpu()
            starts = [0, *itertools.accumulate(len(k) for k in labels)]
            maps = [{label: as_array(m) for label, m in zip(labels[i], finished[starts[i]:starts[i + 1]], strict=True)}
                    for i in range(len(items))]
        layer = result.layer if result is not None else self.model.config.cam_layer
        return [Prediction(item.name, ranked[i], found[i], maps[i], self.spec.size, item.placement, self.threshold,
                           self.method, {label: self._logit(logits, i, label) for label in labels[i]}, layer, trust[i],
                           changes[i], kept[i])
                for i, item in enumerate(items)]

    def predict(self, images: Sequence[ImageSource], *, set_characteristics: Mapping[str, bool] | None = None
                ) -> list[Prediction]:
        """Predict images (PIL images, paths or file bytes), ``batch_size`` at a time; with
        ``set_characteristics`` (e.g. ``{"Scale": True, "Pustule": False}``) as the user set them
        (:meth:`run`). The setting is checked before any image is read."""
        if set_characteristics:
            self.intervention_values(set_characteristics)
        predictions: list[Prediction] = []
        for chunk in _chunks(images, self.batch_size):
            predictions += self.run([self.prepare(source) for source in chunk], set_characteristics)
        return predictions

    def _logit(self, logits: dict[str, torch.Tensor], row: int, label: str) -> float:
        head, _, name = label.partition(":")
        return float(logits[head][row, self.model.target_names[head].index(name)])

    def _ranked(self, diagnosis: torch.Tensor) -> list[tuple[str, float]]:
        order = torch.argsort(diagnosis, descending=True, stable=True).tolist()
        return [(self.model.target_names["diagnosis"][k], float(diagnosis[k])) for k in order]

    def _characteristics(self, characteristic: torch.Tensor) -> list[CharacteristicResult]:
        return [CharacteristicResult(name, float(p), float(p) >= self.threshold)
                for name, p in zip(self.model.target_names["characteristic"], characteristic.tolist(), strict=True)]

    def model_info(self) -> dict[str, Any]:
        """Names, versions, the checkpoint fingerprint (SHA-256 of the weights file), the training-data
        record without its image list (:func:`~dermx.train.provenance.training_summary`), the calibration
        (temperatures, α, score, validation images per group; ``None`` with ``calibration_note`` saying why),
        the default target risk of abstention, and where the model runs (``device``, ``precision``)."""
        config = self.model.config
        return {
            "backbone": config.backbone, "kind": config.kind, "preset": config.preset,
            "input_size": list(config.input_size), "diagnoses": list(config.diagnoses),
            "characteristics": list(config.characteristics), "cam_layer": config.cam_layer,
            "method": self.method, "threshold": self.threshold, "resolution": self.spec.policy,
            "dermx_version": __version__, "training_data": training_summary(config.training_data),
            "calibration": None if self.calibration is None else {
                k: v for k, v in self.calibration.to_dict().items() if k not in ("risk_curve", "threshold",
                                                                                  "group_thresholds")},
            "calibration_note": self.calibration_note,
            "abstain_risk": self.abstain_risk,
            "device": str(self.compute.torch_device()), "precision": self.compute.precision,
            "checkpoint": None if self.weights is None else {
                "name": (self.weights.parent if self.checkpoint is not None else self.weights).name,
                "sha256": self.fingerprint},
        }
