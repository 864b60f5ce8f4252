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


class PredictResponse(BaseModel):
    source: str
    diagnosis: str | None = Field(description="Top-ranked diagnosis; null when the model abstains (`reason`).")
    diagnoses: list[RankedDiagnosis] = Field(description="Every diagnosis, best first.")
    characteristics: list[Characteristic]
    threshold: float
    method: str
    input_size: list[int] = Field(description="Model input (height, width).")
    image_size: list[int] = Field(description="Decoded image (height, width) after EXIF orientation: a large "
                                              "upload is decoded at 1/k scale (integer k), its shorter side "
                                              "kept at least 1024 px (the display size).")
    image: str = Field(description="JPEG data URL of the oriented image at display size; when the model input "
                                   "was padded, the whole input at the image's scale, padding hatched.")
    overlays: list[Overlay] = Field(description="Top diagnosis, then each present characteristic.")
    colorbar: str = Field(description="PNG data URL of the overlays' colour scale, map value 0 (left) to 1.")
    input_area: InputArea | None = Field(description="Where the image lies in `image` when padding was added "
                                                      "to fit the model input; null otherwise.")
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


class Health(BaseModel):
    status: str
    queued: int = Field(description="Requests waiting for the model.")


class ErrorBody(BaseModel):
    """The one shape of every error answer (4xx and 503)."""

    error: str = Field(description="What was wrong, naming the upload where there is one.")
