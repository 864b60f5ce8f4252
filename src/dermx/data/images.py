"""Clinical images: find a user-supplied image for a DermXDB stem and load it as RGB."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dermx.data.records import DermXDBError

IMAGE_SUFFIXES: tuple[str, ...] = (".jpeg", ".jpg", ".png", ".webp", ".tif", ".tiff", ".bmp")


#: Full-scale sample value of each high-bit-depth single-channel mode: 16-bit gray (``I;16`` and its
#: byte orders; ``I`` is what Pillow gives for 16-bit PGM/PPM, and is read on the same 16-bit scale)
#: and 32-bit float (``F``, as in float TIFFs, read on the [0, 1] scale).
FULL_SCALE: dict[str, float] = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535,
                                "F": 1.0}


def to_8bit(image: Image.Image) -> Image.Image:
    """A high-bit-depth gray image (a mode of :data:`FULL_SCALE`) as 8-bit ``L``; others unchanged.

    A sample v of full scale s becomes round(255 · v / s), so 16-bit v = 257 · u gives back the 8-bit
    u exactly (Pillow's own conversion clips at 255 instead: a 16-bit photograph turns white). Samples
    outside [0, s], or not finite, have no known scale: :class:`ValueError` naming the range found.
    (16-bit RGB and RGBA PNG and TIFF files already open as 8-bit ``RGB``/``RGBA`` in Pillow.)
    """
    full = FULL_SCALE.get(image.mode)
    if full is None:
        return image
    samples = np.asarray(image, dtype=np.float32)
    low, high = (float(samples.min()), float(samples.max())) if samples.size else (0.0, 0.0)
    if not (np.isfinite(low) and np.isfinite(high) and low >= 0 and high <= full):
        raise ValueError(f"{image.mode} samples span [{low:g}, {high:g}], outside the [0, {full:g}] "
                         f"range read as black to white")
    return Image.fromarray(np.rint(samples * (255 / full)).astype(np.uint8), "L")


def to_rgb(image: Image.Image, *, in_place: bool = False) -> Image.Image:
    """An opened image of any mode (L, RGBA, CMYK, P, 16-bit and float gray, ...) as 8-bit RGB with
    its EXIF orientation applied; high-bit-depth samples are scaled by :func:`to_8bit`, and transparent
    pixels are composited on black.

    ``in_place``: the image is the caller's to change (a file just decoded): it is oriented in place and
    returned itself when already RGB, so a large photograph is not copied twice more at full size."""
    if in_place:
        ImageOps.exif_transpose(image, in_place=True)
        if image.mode == "RGB":
            return image
    else:
        image = ImageOps.exif_transpose(image)
    image = to_8bit(image)
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def decode_reduced(image: Image.Image, min_side: int) -> Image.Image:
    """Decode an opened, not yet loaded ``image`` at a reduced scale whose shorter side stays ≥ ``min_side``.

    The scale is 1/k for the largest integer k allowed (k = 1: decoded as is). JPEG is decoded at that
    scale or the next larger one by the decoder itself (:meth:`PIL.Image.Image.draft`: DCT scaling, the
    full-size pixels never exist); other formats are decoded, then box-averaged over k × k blocks
    (nearest sample for palette and bilevel images; colour and alpha are averaged separately), so the
    full-size pixels are dropped before any conversion. Any mode is kept as it is for :func:`to_rgb`.
    """
    factor = min(image.size) // min_side
    if factor >= 2 and image.format in ("JPEG", "MPO"):
        image.draft(image.mode, (image.width // factor, image.height // factor))
    image.load()
    factor = min(image.size) // min_side
    if factor < 2:
        return image
    if image.mode in ("1", "P") or image.mode.startswith("I;16"):  # modes Image.reduce refuses
        reduced = image.resize((image.width // factor, image.height // factor), Image.Resampling.BOX,
                               reducing_gap=None)
    else:
        reduced = image.reduce(factor)
    reduced.info = dict(image.info)  # EXIF orientation, transparency
    return reduced


def load_rgb(path: Path, expected_size: tuple[int, int] | None = None, *, min_side: int | None = None) -> Image.Image:
    """Open an image file as RGB with :func:`to_rgb`.

    ``expected_size`` = (width, height), when given, is checked after orientation. ``min_side``, when
    given, decodes a large image at a reduced scale first (:func:`decode_reduced`), which bounds the
    memory and time a large upload costs. Raises :class:`DermXDBError` naming the file on any problem.
    """
    try:
        with Image.open(path) as opened:
            decoded = opened if min_side is None else decode_reduced(opened, min_side)
            decoded.load()
            image = to_rgb(decoded, in_place=True)
    except Image.DecompressionBombError as error:  # a header declaring over twice Pillow's pixel limit
        raise DermXDBError(f"{path}: image has too many pixels ({error})") from error
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        raise DermXDBError(f"{path}: unreadable image ({error})") from error
    if expected_size is not None and image.size != tuple(expected_size):
        raise DermXDBError(f"{path}: image is {image.size[0]}x{image.size[1]}, annotations expect "
                           f"{expected_size[0]}x{expected_size[1]}")
    return image


def pixel_digest(path: Path) -> str:
    """SHA-256 (16 hex digits) of an image's pixels as :func:`load_rgb` decodes them (EXIF orientation
    applied, 8-bit RGB), with its size: the same picture saved under another name, in another lossless
    format or with other metadata has the same digest; one changed pixel gives another."""
    image = load_rgb(path)
    digest = hashlib.sha256(f"{image.width}x{image.height}|".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()[:16]


def index_image_folder(folder: Path) -> dict[str, Path]:
    """Image files under ``folder`` (recursively) keyed by file name and by stem."""
    if not folder.is_dir():
        raise DermXDBError(f"{folder}: image folder does not exist")
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            found.setdefault(path.name, path)
            found.setdefault(path.stem, path)
    return found
