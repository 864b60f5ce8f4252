"""Test material shared by the predict and serve tests: tiny checkpoints and sample images."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dermx.models import build_model, load_checkpoint, save_checkpoint
from dermx.models.intervention import fit_intervention_rule
from dermx.trust.fitted import fit_model_calibration

INPUT_SIZE = (64, 64)


def tiny_checkpoint(directory: Path, kind: str = "dermx") -> Path:
    """A small-preset checkpoint with random weights at a 64×64 input.

    Batch-norm affine parameters are randomised too: timm zero-initialises the last one of each
    residual block, which would make every gradient at the CAM layer, hence every map, zero.
    """
    torch.manual_seed(0)
    model = build_model("small", kind=kind, pretrained=False, input_size=INPUT_SIZE)  # type: ignore[arg-type]
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    return save_checkpoint(model, directory)


def calibrated_checkpoint(directory: Path) -> Path:
    """:func:`tiny_checkpoint` carrying a calibration fitted on known logits: 300 rows of 6 classes whose
    labels are drawn from ``softmax(z / 2)`` for the 150 of skin tone ``light`` and ``softmax(z / 4)`` for
    the 150 ``dark`` (each group large enough for a temperature and a finite set threshold of its own, and
    far enough from the overall one for the cross-fitted check to keep it)."""
    model = load_checkpoint(tiny_checkpoint(directory))
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (300, len(model.config.diagnoses)))
    t = np.repeat([2.0, 4.0], 150)[:, None]
    p = torch.softmax(torch.from_numpy(z / t), dim=1).numpy()
    y = [int(rng.choice(len(row), p=row)) for row in p]
    fitted = fit_model_calibration(z, y, ["light"] * 150 + ["dark"] * 150)
    model.config.calibration = fitted.to_dict()
    return save_checkpoint(model, directory)


def with_intervention_rule(checkpoint: Path) -> Path:
    """``checkpoint`` (re-saved in place) with an intervention rule fitted on 40 made-up training logits."""
    model = load_checkpoint(checkpoint)
    logits = torch.randn(40, len(model.config.characteristics), generator=torch.Generator().manual_seed(5)) * 2
    model.config.interventions = fit_intervention_rule(logits, model.config.characteristics).to_dict()
    return save_checkpoint(model, checkpoint)


def photo(width: int = 96, height: int = 72, seed: int = 0) -> Image.Image:
    """A deterministic RGB picture: smooth gradients, a bright square and some noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 / width, y * 255 / height, np.full_like(x, 90.0)], axis=-1)
    pixels[height // 4: height // 2, width // 5: width // 2] = 250
    pixels += rng.normal(0, 8, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def photo_file(directory: Path, name: str = "lesion.png", seed: int = 0) -> Path:
    """A default-sized :func:`photo` saved as ``directory / name`` (the format from the suffix)."""
    path = directory / name
    photo(seed=seed).save(path)
    return path


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` × ``height`` pixels (the data is a 1×1 image's)."""
    data = bytearray(encoded(Image.new("RGB", (1, 1)), "PNG"))
    ihdr = 8  # after the signature: length (4), type (4), fields (13), CRC (4)
    data[ihdr + 8: ihdr + 16] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr + 4: ihdr + 21]))
    data[ihdr + 21: ihdr + 25] = struct.pack(">I", crc)
    return bytes(data)
