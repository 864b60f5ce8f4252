"""The manifest of a run: software versions, seeds, configuration, data fingerprint, command line.

The data fingerprint is the SHA-256 of the sorted lines ``relative path|size|mtime_ns`` of every
annotation file of a DermXDB folder (``annotations/``, ``masks/``, ``folds/``, ``metadata.csv``): it
changes when a file is added, removed, resized or touched, without reading the contents.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

ANNOTATION_PARTS: tuple[str, ...] = ("annotations", "masks", "folds", "metadata.csv")
MANIFEST = "manifest.json"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def data_fingerprint(root: str | Path) -> dict[str, Any]:
    """``{"root", "files", "sha256"}`` of the annotation files under ``root`` (module docstring)."""
    root = Path(root)
    files = sorted(p for part in ANNOTATION_PARTS for p in ([root / part] if (root / part).is_file()
                                                              else (root / part).rglob("*")) if p.is_file())
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return {"root": str(root.resolve()), "files": len(files), "sha256": digest.hexdigest()}


def build_manifest(*, config: dict[str, Any], seeds: dict[str, int], data_root: str | Path | None,
                   command: list[str] | None = None) -> dict[str, Any]:
    """A manifest document (module docstring); ``command`` defaults to ``sys.argv``."""
    return {
        "versions": {"python": platform.python_version(),
                     **{name: _version(name) for name in ("dermx", "torch", "torchvision", "timm", "numpy")}},
        "platform": platform.platform(),
        "seeds": seeds,
        "config": config,
        "data": data_fingerprint(data_root) if data_root is not None else None,
        "command": list(command if command is not None else sys.argv),
    }


def write_manifest(manifest: dict[str, Any], run_dir: str | Path) -> Path:
    path = Path(run_dir) / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def read_manifest(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def manifest_rows(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """The manifest as ``(label, text)`` rows for a reader: versions, platform, seeds, data fingerprint,
    command line and the configured sections (the full configuration stays in ``manifest.json``)."""
    rows = [("versions", ", ".join(f"{k} {v}" for k, v in manifest.get("versions", {}).items())),
            ("platform", str(manifest.get("platform", "–"))),
            ("seeds", ", ".join(f"{k} {v}" for k, v in manifest.get("seeds", {}).items()) or "–")]
    data = manifest.get("data")
    rows.append(("data fingerprint", f"SHA-256 {data['sha256'][:16]}… of {data['files']} annotation files"
                 if data else "–"))
    rows.append(("command", shlex.join(str(part) for part in manifest.get("command", [])) or "–"))
    rows.append(("configuration", ", ".join(manifest.get("config", {})) or "–"))
    return rows
