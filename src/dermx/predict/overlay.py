"""Explanation maps as pictures: a coloured, value-transparent heat layer, blended overlays, PNGs.

The heat layer colours a map in ``[0, 1]`` with a Matplotlib colormap and makes each pixel as opaque
as its value, so weak evidence stays see-through. The CLI writes the layer composited on the image;
the web page stacks the layer on the image and scales its opacity with a slider. Both are the same
picture at full opacity.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from matplotlib import colormaps
from PIL import Image

DEFAULT_COLORMAP = "jet"


def heat_layer(values: np.ndarray, colormap: str = DEFAULT_COLORMAP) -> Image.Image:
    """An RGBA image of a ``(h, w)`` map in ``[0, 1]``: colour from ``colormap``, alpha = value."""
    clipped = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float32)), 0.0, 1.0)
    rgba = colormaps[colormap](clipped, bytes=True)
    rgba[..., 3] = np.round(clipped * 255).astype(np.uint8)
    return Image.fromarray(rgba, "RGBA")


def blend(image: Image.Image, values: np.ndarray, opacity: float = 0.6,
          colormap: str = DEFAULT_COLORMAP) -> Image.Image:
    """``image`` (RGB) with the heat layer of ``values`` composited at ``opacity`` (resized to fit)."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    layer = heat_layer(values, colormap)
    if layer.size != image.size:
        layer = layer.resize(image.size, Image.Resampling.BILINEAR)
    alpha = np.asarray(layer.getchannel("A"), dtype=np.float32) * opacity
    layer.putalpha(Image.fromarray(np.round(alpha).astype(np.uint8), "L"))
    return Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    """The bytes of ``image`` saved as ``fmt``."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def data_url(image: Image.Image, fmt: str = "PNG") -> str:
    """A ``data:`` URL of ``image`` saved as ``fmt`` (PNG or JPEG)."""
    mime = {"PNG": "image/png", "JPEG": "image/jpeg"}[fmt]
    return f"data:{mime};base64,{base64.b64encode(encode(image, fmt)).decode('ascii')}"
