"""Response bodies of the web service (they also document the OpenAPI schema)."""

from __future__ import annotations

from typing import Any

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
    png: str = Field(description="PNG data URL of the heat layer (alpha = map value), same size as `image`.")


class PredictResponse(BaseModel):
    source: str
    diagnosis: str = Field(description="Top-ranked diagnosis.")
    diagnoses: list[RankedDiagnosis] = Field(description="Every diagnosis, best first.")
    characteristics: list[Characteristic]
    threshold: float
    method: str
    input_size: list[int] = Field(description="Model input (height, width).")
    image_size: list[int] = Field(description="Uploaded image (height, width) after EXIF orientation.")
    image: str = Field(description="JPEG data URL of the oriented image, at the overlays' size.")
    overlays: list[Overlay] = Field(description="Top diagnosis, then each present characteristic.")


class CheckpointInfo(BaseModel):
    name: str
    sha256: str = Field(description="SHA-256 of the weights file.")


class ModelInfo(BaseModel):
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
    training_data: dict[str, Any]
    checkpoint: CheckpointInfo | None


class Health(BaseModel):
    status: str
    queued: int = Field(description="Requests waiting for the model.")


class ErrorBody(BaseModel):
    error: str
