"""Response bodies of the web service (they also document the OpenAPI schema)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RankedDiagnosis(BaseModel):
    name: str
    probability: float = Field(description="Softmax probability.")


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
    diagnosis: str = Field(description="Top-ranked diagnosis.")
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


class Health(BaseModel):
    status: str
    queued: int = Field(description="Requests waiting for the model.")


class ErrorBody(BaseModel):
    """The one shape of every error answer (4xx and 503)."""

    error: str = Field(description="What was wrong, naming the upload where there is one.")
