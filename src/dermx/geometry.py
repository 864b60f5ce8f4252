"""Image geometry, in one place: how an image becomes a model input and how a map goes back.

Every stage (training, prediction, explanation, the benchmark, the service) fits images and maps
with these functions; reading files is :mod:`dermx.data.images` (EXIF orientation, any mode).

Forward, for an image of native size (H, W) and a model input of size (h, w):

1. **resize** (bilinear) to the scaled size (h', w') of the resolution policy (:func:`scaled_size`):
   ``pad`` keeps the aspect ratio and fits inside, s = min(h/H, w/W); ``crop`` keeps it and covers,
   s = max(h/H, w/W); then (h', w') = (max(1, round(sH)), max(1, round(sW))). ``squash`` takes
   (h', w') = (h, w).
2. **centre pad / crop** to (h, w) with torchvision's rule (:func:`joint_transform`): input row i
   shows scaled row i + o, with o = round((h' − h)/2) when h' ≥ h (crop) and o = −⌊(h − h')/2⌋
   otherwise (pad); columns alike. Pixels showing no image are 0 before normalisation.
3. **normalise**: x ↦ (x/255 − mean)/std per channel.

:class:`Placement` holds steps 1–2 for one image; :meth:`Placement.restore` is their inverse for maps:
the input map is put back on the scaled grid (0 where the model saw no image, e.g. cropped margins),
the padding dropped, and the result resized bilinearly to (H, W) and clipped to [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from dermx.choices import ResolutionPolicy

#: ``(height, width)``.
Size = tuple[int, int]
#: ``(top, left, height, width)`` of a rectangle of pixels.
Box = tuple[int, int, int, int]

#: Resampling of maps (:func:`resize`).
Interpolation = Literal["bilinear", "nearest", "bicubic"]

RESOLUTION_POLICIES: tuple[str, ...] = get_args(ResolutionPolicy)


def check_resolution(policy: str) -> None:
    """ValueError unless ``policy`` is one of :data:`RESOLUTION_POLICIES`."""
    if policy not in RESOLUTION_POLICIES:
        raise ValueError(f"unknown resolution policy {policy!r}; expected one of {RESOLUTION_POLICIES}")


@dataclass(frozen=True)
class InputSpec:
    """How an image becomes a model input (module docstring): the input ``size`` (h, w), the resolution
    ``policy`` that fits the image into it, and the per-channel ``mean`` and ``std`` of step 3. One model
    has one spec (:attr:`dermx.models.ModelConfig.input_spec`); every stage that feeds it reads this one."""

    size: Size
    mean: tuple[float, ...]
    std: tuple[float, ...]
    policy: ResolutionPolicy = "pad"

    def __post_init__(self) -> None:
        check_resolution(self.policy)

    def normalise(self, pixels: Sequence[np.ndarray]) -> torch.Tensor:
        """Step 3 on fitted ``(H, W, 3)`` uint8 images: the ``(B, 3, H, W)`` batch (x / 255 − mean) / std per
        channel (the training transform applies the same with torchvision's ``Normalize``)."""
        batch = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float() / 255
        return (batch - torch.tensor(self.mean)[:, None, None]) / torch.tensor(self.std)[:, None, None]

    def denormalise(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised inputs ``(B, 3, h, w)`` back to pixels in [0, 1] (the inverse of step 3)."""
        m = torch.tensor(self.mean, dtype=images.dtype)[:, None, None]
        s = torch.tensor(self.std, dtype=images.dtype)[:, None, None]
        return (images * s + m).clamp(0, 1)


def scaled_size(height: int, width: int, target: Size, policy: ResolutionPolicy) -> Size:
    """The size (h', w') an image of (height, width) is resized to before centre pad/crop to ``target``."""
    check_resolution(policy)
    if policy == "squash":
        return tuple(target)  # type: ignore[return-value]
    ratios = (target[0] / height, target[1] / width)
    scale = min(ratios) if policy == "pad" else max(ratios)
    return max(1, round(height * scale)), max(1, round(width * scale))


def fit_image(image: Image.Image, target: Size, policy: ResolutionPolicy) -> Image.Image:
    """Step 1: ``image`` resized (bilinear, no reducing gap) to its :func:`scaled_size`."""
    height, width = scaled_size(image.height, image.width, target, policy)
    return image.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=None)


def joint_transform(size: Size, mean: Sequence[float], std: Sequence[float], *, augment: bool,
                    color_jitter: bool = True) -> v2.Compose:
    """Steps 2–3 on a resized image: centre pad/crop to ``size``; (augment) flips, affine and
    (``color_jitter``) colour jitter; float and normalise. Geometric steps apply to the image and to
    ``tv_tensors.Mask`` maps alike; colour steps and normalisation to the image only."""
    steps: list[v2.Transform] = [v2.CenterCrop(list(size))]
    if augment:
        steps += [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(),
                  v2.RandomAffine(degrees=15, translate=(0.05, 0.05), scale=(0.9, 1.1))]
        if color_jitter:
            steps.append(v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02))
    steps += [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
              v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)


def _offset(scaled: int, size: int) -> int:
    """o of step 2: input index i shows scaled index i + o."""
    return round((scaled - size) / 2) if scaled >= size else -((size - scaled) // 2)


@dataclass(frozen=True)
class Placement:
    """Where an image sits in the model input (steps 1–2 of the module docstring).

    ``original`` and ``resized`` are ``(h, w)`` before and after resizing; ``inside`` is the
    :data:`Box` of the model input showing image pixels, and ``visible`` the same-sized box of the
    resized image it shows (smaller than the resized image only when cropping).
    """

    original: Size
    resized: Size
    inside: Box
    visible: Box

    @classmethod
    def of(cls, original: Size, input_size: Size, policy: ResolutionPolicy) -> Placement:
        """The placement of an image of size ``original`` in an input of ``input_size``."""
        resized = scaled_size(original[0], original[1], input_size, policy)
        inside, visible = [], []
        for scaled, size in zip(resized, input_size, strict=True):
            o = _offset(scaled, size)
            start, stop = max(0, o), min(scaled, o + size)
            inside.append((start - o, stop - start))
            visible.append((start, stop - start))
        (it, ih), (il, iw) = inside
        (vt, _), (vl, _) = visible
        return cls(tuple(original), resized, (it, il, ih, iw), (vt, vl, ih, iw))  # type: ignore[arg-type]

    @property
    def cropped(self) -> bool:
        """Whether the model input shows only part of the resized image (``crop`` cut some away)."""
        return tuple(self.visible[2:]) != tuple(self.resized)

    def restore(self, maps: torch.Tensor, size: Size | None = None) -> torch.Tensor:
        """Maps ``(..., h, w)`` on the model input → ``(..., H, W)`` on the original image (or at
        ``size``); image regions the model never saw (cropped away) are 0; values clipped to [0, 1]."""
        top, left, height, width = self.inside
        v_top, v_left, _, _ = self.visible
        out_height, out_width = size or self.original
        target = (out_height, out_width)
        lead = maps.shape[:-2]
        flat = maps.reshape(-1, 1, *maps.shape[-2:]).float()
        canvas = flat.new_zeros((flat.shape[0], 1, *self.resized))
        canvas[..., v_top:v_top + height, v_left:v_left + width] = flat[..., top:top + height, left:left + width]
        out = resize(canvas, target)
        return out.clamp(0, 1).reshape(*lead, *target)


def resize(maps: torch.Tensor, size: Size, interpolation: Interpolation = "bilinear") -> torch.Tensor:
    """Resize ``(B, C, h, w)`` maps to ``size`` with half-pixel centres (``align_corners=False``, as
    OpenCV's ``INTER_LINEAR``); a no-op when the size already matches."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    corners = {"align_corners": False} if interpolation != "nearest" else {}
    return F.interpolate(maps, size=size, mode=interpolation, **corners)


def to_native(maps: torch.Tensor, native: Size, input_size: Size, policy: ResolutionPolicy) -> torch.Tensor:
    """Maps ``(..., h, w)`` on the input grid → ``(..., H, W)`` on the native grid (:meth:`Placement.restore`)."""
    return Placement.of(native, input_size, policy).restore(maps)


def preprocess(image: Image.Image, size: Size, transform: v2.Transform,
               policy: ResolutionPolicy = "pad") -> tuple[torch.Tensor, Placement]:
    """The model input ``(3, H, W)`` of an RGB ``image`` and its :class:`Placement`.

    ``transform`` is the evaluation transform ``joint_transform(size, mean, std, augment=False)``.
    """
    sample = transform(tv_tensors.Image(TF.pil_to_tensor(fit_image(image, size, policy))))
    return sample.as_subclass(torch.Tensor), Placement.of((image.height, image.width), size, policy)


def model_pixels(image: Image.Image, size: Size, policy: ResolutionPolicy) -> torch.Tensor:
    """Steps 1–2 without normalisation: the ``(3, h, w)`` uint8 pixels the model sees."""
    return TF.center_crop(TF.pil_to_tensor(fit_image(image, size, policy)), list(size))


def display_size(original: Size, longest: int) -> Size:
    """``(h, w)`` of ``original`` scaled down (never up) so its longest side is at most ``longest``."""
    scale = min(1.0, longest / max(original))
    return max(1, round(original[0] * scale)), max(1, round(original[1] * scale))
