"""The identity of a DermXDB folder: what defines a data set, wherever it lives.

SHA-256 over the annotation, metadata and fold files (:data:`IDENTITY_FILES`): each file's path
relative to the folder, its size and its contents. A copy or move keeps the identity; another data
set with the same file names (another synthetic seed), or one changed byte, does not. Images are not
part of the release and not part of the identity (a model's training record holds its images' pixel
digests, :func:`dermx.data.images.pixel_digest`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

#: The DermXDB files whose content defines a data set.
IDENTITY_FILES: tuple[str, ...] = ("annotations/*.json", "metadata.csv", "folds/*.csv")


def _files(root: Path) -> list[Path]:
    return [p for pattern in IDENTITY_FILES for p in sorted(root.glob(pattern))]


def dermxdb_identity(root: str | Path) -> str:
    """The identity (16 hex digits) of the DermXDB folder ``root`` (module docstring)."""
    root = Path(root)
    digest = hashlib.sha256()
    for path in _files(root):
        digest.update(f"{path.relative_to(root).as_posix()}|{path.stat().st_size}|".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def data_identity(root: str | Path) -> dict[str, Any]:
    """``{"name", "files", "identity"}`` of a DermXDB folder, as a run's manifest records it (the folder's
    name, never a path of the machine)."""
    root = Path(root)
    return {"name": root.resolve().name, "files": len(_files(root)), "identity": dermxdb_identity(root)}
