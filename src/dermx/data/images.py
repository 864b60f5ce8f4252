"""Clinical images: find a user-supplied image for a DermXDB stem and load it as RGB."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from dermx.data.records import DermXDBError

IMAGE_SUFFIXES: tuple[str, ...] = (".jpeg", ".jpg", ".png", ".webp", ".tif", ".tiff", ".bmp")


def to_rgb(image: Image.Image) -> Image.Image:
    """An opened image of any mode (L, RGBA, CMYK, P, ...) as RGB with its EXIF orientation applied;
    transparent pixels are composited on black."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def load_rgb(path: Path, expected_size: tuple[int, int] | None = None) -> Image.Image:
    """Open an image file as RGB with :func:`to_rgb`.

    ``expected_size`` = (width, height), when given, is checked after orientation. Raises
    :class:`DermXDBError` naming the file on any problem.
    """
    try:
        with Image.open(path) as opened:
            opened.load()
            image = to_rgb(opened)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        raise DermXDBError(f"{path}: unreadable image ({error})") from error
    if expected_size is not None and image.size != tuple(expected_size):
        raise DermXDBError(f"{path}: image is {image.size[0]}x{image.size[1]}, annotations expect "
                           f"{expected_size[0]}x{expected_size[1]}")
    return image


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
