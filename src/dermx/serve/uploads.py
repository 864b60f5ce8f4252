"""Checking an uploaded file before it reaches the model: size, type, pixel count, integrity.

Every refusal is an :class:`UploadError` with the HTTP status to answer and a message naming the
file. The header is read first (no pixels decoded), so oversized or unsupported images are refused
before any decompression; PIL's own decompression-bomb guard is caught as well.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

#: PIL format names accepted (MPO is the multi-picture JPEG of many phone cameras).
ACCEPTED_FORMATS: frozenset[str] = frozenset({"JPEG", "MPO", "PNG", "WEBP", "TIFF", "BMP"})


class UploadError(Exception):
    """An upload refused with HTTP ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


#: Largest image accepted by default, in pixels: a 24-megapixel camera frame (6000×4000) fits. The models
#: see at most a few hundred pixels a side and the page 1024; this bounds the one full-size decode a
#: non-JPEG upload costs (about 4 bytes a pixel: 100 MB) before it is reduced.
DEFAULT_MAX_PIXELS = 25_000_000
#: Uploads read, checked and decoded at once by default (and responses rendered at once): with
#: :data:`DEFAULT_MAX_PIXELS`, what bounds the memory large uploads take.
DEFAULT_MAX_DECODES = 2
#: Seconds a request's body may take to arrive by default (a 20 MB upload at 4 Mbit/s takes 40 s).
DEFAULT_BODY_TIMEOUT = 60.0
#: Seconds a request's headers may take to arrive by default (after the connection or the previous
#: response); :mod:`dermx.serve.protocol`.
DEFAULT_HEADER_TIMEOUT = 10.0
#: Seconds an idle keep-alive connection stays open by default (uvicorn's ``timeout_keep_alive``).
DEFAULT_KEEP_ALIVE = 5


@dataclass(frozen=True)
class UploadLimits:
    """Largest accepted upload in bytes and image in pixels (width × height)."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS


def check_upload(data: bytes, name: str, limits: UploadLimits) -> str:
    """The PIL format of an acceptable upload; raises :class:`UploadError` (400/413/415) otherwise."""
    if not data:
        raise UploadError(400, f"{name}: the uploaded file is empty")
    if len(data) > limits.max_bytes:
        raise UploadError(413, f"{name}: upload of {len(data)} bytes exceeds the limit of {limits.max_bytes} bytes")
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt, (width, height) = image.format or "", image.size
    except Image.DecompressionBombError as error:
        raise UploadError(413, f"{name}: image has too many pixels ({error})") from error
    except UnidentifiedImageError as error:  # its message shows the buffer object, not the upload
        raise UploadError(415, f"{name}: not a readable image file (no image format recognised)") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise UploadError(415, f"{name}: not a readable image file ({error})") from error
    if fmt not in ACCEPTED_FORMATS:
        raise UploadError(415, f"{name}: {fmt} images are not supported; send one of "
                               f"{', '.join(sorted(ACCEPTED_FORMATS - {'MPO'}))}")
    if width * height > limits.max_pixels:
        raise UploadError(413, f"{name}: image is {width}x{height} = {width * height} pixels, more than the "
                               f"limit of {limits.max_pixels}")
    return fmt
