"""Response bodies of the web service (they also document the OpenAPI schema)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RankedDiagnosis(BaseModel):
    name: str
    probability: float = Field(description="Softmax probability (calibrated when `calibrated`).")


class Characteristic(BaseModel):
    name: str
    probability: float = Field(description="Sigmoid probability.")
    present: bool = Field(description="probability ≥ threshold")


class Overlay(BaseModel):
    target: str = Field(description="Target label, e.g. 'diagnosis:Psoriasis' or 'characteristic:Plaque'.")
    head: str
    name: str
    probability: float | None = Field(description="The model's probability of the target.")
    title: str = Field(description="Caption: target, probability and CAM method.")
    png: str = Field(description="PNG data URL of the heat layer (viridis, alpha = map value), same size as "
                                 "`image`.")


class InputArea(BaseModel):
    box: list[int] = Field(description="The image's (top, left, height, width) in `image`'s pixels.")
    size: list[int] = Field(description="`image`'s (height, width): the model input at the image's scale.")


class Answer(BaseModel):
    """What a prediction and an intervention both answer about one image."""

    id: str | None = Field(description="The prediction's id for `POST /v1/predictions/{id}/intervene`; null when "
                                        "the model takes no interventions (`GET /v1/model`: `intervention_note`).")
    source: str
    diagnosis: str | None = Field(description="Top-ranked diagnosis; null when the model abstains (`reason`).")
    diagnoses: list[RankedDiagnosis] = Field(description="Every diagnosis, best first.")
    characteristics: list[Characteristic]
    threshold: float
    method: str
    overlays: list[Overlay] = Field(description="Top diagnosis, then each present characteristic (not one set by "
                                                "an intervention).")
    calibrated: bool = Field(description="Whether the probabilities are calibrated (temperature fitted on the "
                                         "validation images in training); the fields below need it.")
    calibration_note: str | None = Field(None, description="Why the model is not calibrated.")
    temperature: float | None = Field(None, description="T of the probabilities softmax(z / T).")
    skin_tone: str | None = Field(None, description="The skin tone the request gave (null: unknown).")
    group_key: str | None = Field(None, description="The attribute the calibration groups are values of.")
    group_note: str | None = Field(None, description="Whose temperature and set threshold were used.")
    diagnosis_set: list[str] | None = Field(None, description="Classes of the conformal set, most probable "
                                                              "first.")
    set_coverage: float | None = Field(None, description="1 − α: the share of images, exchangeable with the "
                                                         "validation images, whose set holds the true class.")
    set_threshold: float | str | None = Field(None, description="Conformal threshold used ('inf': every class).")
    abstain_risk: float | None = Field(None, description="Target risk of abstention (null: none asked).")
    abstain_threshold: float | str | None = Field(None, description="Top probability below which the model "
                                                                    "abstains ('inf': always).")
    abstain: bool | None = Field(None, description="The model abstains: no top diagnosis, the set instead.")
    reason: str | None = Field(None, description="Why it abstains: 'uncertain: A or B' (the set's classes).")


class PredictResponse(Answer):
    input_size: list[int] = Field(description="Model input (height, width).")
    image_size: list[int] = Field(description="Decoded image (height, width) after EXIF orientation: a large "
                                              "upload is decoded at 1/k scale (integer k), its shorter side "
                                              "kept at least 1024 px (the display size).")
    image: str = Field(description="JPEG data URL of the oriented image at display size; when the model input "
                                   "was padded, the whole input at the image's scale, padding hatched.")
    colorbar: str = Field(description="PNG data URL of the overlays' colour scale, map value 0 (left) to 1.")
    input_area: InputArea | None = Field(description="Where the image lies in `image` when padding was added "
                                                      "to fit the model input; null otherwise.")


class InterventionRequest(BaseModel):
    """``POST /v1/predictions/{id}/intervene``: the characteristics a clinician sets."""

    set: dict[str, str] = Field(description="Characteristic name -> 'present' or 'absent' (the others stay as "
                                            "the model sees them; none: the model's own answer).",
                                examples=[{"Scale": "present", "Pustule": "absent"}])


class Intervention(BaseModel):
    set: dict[str, str] = Field(description="The characteristics set, as asked.")
    logits: dict[str, float] = Field(description="The logit each set characteristic took: the 95th (present) or "
                                                 "5th (absent) percentile of its logits on the training images.")
    before: list[RankedDiagnosis] = Field(description="The model's own diagnoses (no characteristic set), best "
                                                      "first.")
    change: dict[str, float] = Field(description="Per diagnosis: its probability with the setting minus without.")


class InterventionResponse(Answer):
    """The prediction with the characteristics set: diagnoses, characteristics (a set one at its rule's
    probability), trust fields and maps as ``/v1/predict`` answers them, and what changed."""

    overlays: list[Overlay] = Field(description="The top diagnosis's map, the shape of the prediction's `image` "
                                                "at the model input's scale (the map has no finer detail: stretch "
                                                "it over `image`); the characteristics' maps are the prediction's "
                                                "(a setting changes no other characteristic).")
    intervention: Intervention
    maps_note: str | None = Field(description="Why `overlays` is empty (the maps need a backbone pass, or the "
                                              "service keeps no CAM-layer activations); null when it is not.")


class CheckpointInfo(BaseModel):
    name: str
    sha256: str = Field(description="SHA-256 of the weights file.")


class TrainingData(BaseModel):
    """The fingerprint of the data the model was trained and selected on; no paths of the training machine.

    Every field is ``None`` for a checkpoint saved outside ``dermx train`` (e.g. random weights).
    """

    sha256: str | None = Field(None, description="Fingerprint of the training and validation items "
                                                 "(keys, diagnoses, characteristic labels).")
    fold: int | None = Field(None, description="Cross-validation fold held out, if any.")
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None


class Calibration(BaseModel):
    """The calibration the checkpoint carries, fitted on its validation images in training."""

    temperature: float
    alpha: float = Field(description="Error rate of the diagnosis sets.")
    score: str = Field(description="Conformity score of the sets (lac or aps).")
    n: int = Field(description="Validation images it was fitted on.")
    group_key: str | None
    group_temperatures: dict[str, float]
    group_counts: dict[str, int] = Field(description="Validation images per group.")


class InterventionRule(BaseModel):
    """Per characteristic, the logit it takes when a clinician sets it absent or present."""

    rule: str
    characteristics: list[str]
    absent: list[float] = Field(description="Logit of each characteristic set absent (the 5th percentile of its "
                                            "logits on `n` training images).")
    present: list[float] = Field(description="Logit of each characteristic set present (the 95th percentile).")
    n: int
    percentiles: list[float]


class ModelInfo(BaseModel):
    """``GET /v1/model``: what the service runs."""

    backbone: str
    kind: str
    preset: str | None
    input_size: list[int]
    diagnoses: list[str]
    characteristics: list[str]
    cam_layer: str
    method: str
    threshold: float
    resolution: str
    dermx_version: str
    training_data: TrainingData
    checkpoint: CheckpointInfo | None
    calibration: Calibration | None
    calibration_note: str = Field(description="Why there is no calibration (empty when there is one).")
    abstain_risk: float | None = Field(description="The service's default target risk of abstention.")
    device: str = Field(description="Where the model runs (cpu, cuda:N or mps).")
    precision: str = Field(description="Its precision: 32, bf16-mixed or 16-mixed (autocast around the passes).")
    max_batch: int = Field(description="Most images the service runs in one pass (`dermx serve --batch-size`; "
                                       "by default 8 on the CPU, 32 on a GPU).")
    max_wait_ms: float = Field(description="Longest a request waits for others to share its pass (5 ms on the "
                                           "CPU, 10 ms on a GPU).")
    interventions: InterventionRule | None = Field(description="What setting a characteristic does "
                                                               "(`POST /v1/predictions/{id}/intervene`); null: "
                                                               "the model takes none (`intervention_note`).")
    intervention_note: str = Field(description="Why the model takes no interventions (empty when it does).")


class Health(BaseModel):
    status: str
    queued: int = Field(description="Requests waiting for the model.")
    cached: int = Field(description="Predictions kept for interventions.")
    cached_bytes: int = Field(description="Bytes they take (pooled features and CAM-layer activations).")


class ErrorBody(BaseModel):
    """The one shape of every error answer (4xx and 503)."""

    error: str = Field(description="What was wrong, naming the upload where there is one.")
