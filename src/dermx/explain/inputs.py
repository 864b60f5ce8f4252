"""Which image files a command reads, and the output folder of each: one folder per input.

``explain`` and ``predict`` take files and folders (searched recursively); outputs of one image go to
``OUT/<image stem>/`` (the stem keeps the subfolder of a searched folder). Inputs that would share a
folder (``lesion.jpg`` and ``lesion.png``) keep their suffix (``OUT/lesion.jpg/``, ``OUT/lesion.png/``),
and a name still taken gets ``-2``, ``-3``. Files passed over are listed with why, never dropped silently.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from dermx.data.images import IMAGE_SUFFIXES


@dataclass(frozen=True)
class Inputs:
    """Image files to predict, each with its own output folder (relative to ``OUT``), and the files passed
    over with why."""

    images: list[tuple[Path, str]]
    skipped: list[tuple[str, str]]


def collect(paths: list[Path], reserved: frozenset[str] = frozenset()) -> Inputs:
    """Expand folders (recursively) into image files; everything not taken is in ``skipped``.

    A folder contributes files with an image suffix (others are skipped as "not an image file
    type"); a file named explicitly is always tried. Output folders are named after the input relative
    to the folder given, one per input (module docstring, :func:`_folders`).
    """
    images: list[tuple[Path, str]] = []
    skipped: list[tuple[str, str]] = []
    for path in paths:
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file()):
                if found.suffix.lower() in IMAGE_SUFFIXES:
                    images.append((found, str(found.relative_to(path))))
                else:
                    skipped.append((str(found), f"not an image file type ({found.suffix or 'no suffix'})"))
        elif path.is_file():
            images.append((path, path.name))
        else:
            skipped.append((str(path), "no such file or folder"))
    return Inputs(_folders(images, reserved), skipped)


def _stem(name: str) -> str:
    """``sub/b.png`` → ``sub/b``: a name without its image suffix."""
    path = Path(name)
    return str(path.with_suffix("")) if path.suffix.lower() in IMAGE_SUFFIXES else name


def _folders(named: list[tuple[Path, str]], reserved: frozenset[str]) -> list[tuple[Path, str]]:
    """Each input's output folder: its name without the image suffix, or with it when another input has
    that stem too (or it is a ``reserved`` name: a file the command writes into ``OUT``); a folder still
    taken gets ``-2``, ``-3``, ...
    Names are compared case-insensitively, as some file systems do."""
    stems = [_stem(name) for _, name in named]
    counts = Counter(stem.casefold() for stem in stems)
    taken: set[str] = set()
    folders = []
    for (path, name), stem in zip(named, stems, strict=True):
        base = name if counts[stem.casefold()] > 1 or stem.casefold() in reserved else stem
        folder, n = base, 1
        while folder.casefold() in taken:
            n += 1
            folder = f"{base}-{n}"
        taken.add(folder.casefold())
        folders.append((path, folder))
    return folders
