"""Which DermXDB images an image folder actually holds: :class:`ImageCoverage`.

DermXDB ships without its pictures; users re-collect them from the original sources and rarely find
all of them. :func:`image_coverage` splits the stems a command needs into those with an image file
and those without, so the command can say "found N of M images", go on with the ones found, list the
missing ones in its run folder, and fail only when asked to (``--require-all-images``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dermx.atomic import write_text
from dermx.data.dataset import DermXDB
from dermx.data.records import DermXDBError

MISSING_FILE = "missing_images.txt"


@dataclass(frozen=True)
class ImageCoverage:
    """The stems a command needs, split into ``found`` (an image file exists) and ``missing``."""

    folder: Path
    found: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def expected(self) -> int:
        return len(self.found) + len(self.missing)

    def message(self) -> str:
        """``found N of M images in DIR`` and, when some are missing, the first few of them."""
        text = f"found {len(self.found)} of {self.expected} images in {self.folder}"
        if self.missing:
            shown = ", ".join(self.missing[:5]) + (", ..." if len(self.missing) > 5 else "")
            text += f"; {len(self.missing)} missing ({shown})"
        return text

    def require_all(self) -> None:
        """Raise :class:`DermXDBError` when any image is missing (``--require-all-images``) or none is found."""
        if not self.found:
            raise DermXDBError(f"{self.message()}: no image file for any of them")
        if self.missing:
            raise DermXDBError(f"{self.message()}; every image is required (--require-all-images)")

    def write_missing(self, out: str | Path) -> Path | None:
        """Write the missing stems, one a line, to ``out/missing_images.txt`` (nothing when none)."""
        if not self.missing:
            return None
        return write_text(Path(out) / MISSING_FILE, "".join(f"{stem}\n" for stem in self.missing))

    def to_dict(self) -> dict[str, Any]:
        """Counts (and the missing-list file name when some are missing) for a ``summary.json``."""
        return {"expected": self.expected, "found": len(self.found), "missing": len(self.missing),
                "missing_file": MISSING_FILE if self.missing else None}


def image_coverage(db: DermXDB, stems: Sequence[str] | None = None) -> ImageCoverage:
    """Split ``stems`` (default: every image with a reference diagnosis) by whether the image folder
    of ``db`` holds a file for them. Raises :class:`DermXDBError` when ``db`` has no image folder."""
    if db.image_dir is None:
        raise DermXDBError(f"{db.root}: no image folder given (--images DIR)")
    found, missing = [], []
    for stem in db.stems() if stems is None else stems:
        try:
            db.image_path(stem)
        except DermXDBError:
            missing.append(stem)
        else:
            found.append(stem)
    return ImageCoverage(db.image_dir, tuple(found), tuple(missing))
