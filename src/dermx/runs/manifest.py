"""``manifest.json``: software versions, seeds, configuration, data identity and command line of a run."""

from __future__ import annotations

import json
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from dermx.jsonio import write_json
from dermx.runs.layout import MANIFEST
from dermx.version import __version__

#: The packages whose versions a manifest records.
PACKAGES: tuple[str, ...] = ("dermx", "torch", "torchvision", "timm", "numpy")


def package_version(package: str) -> str:
    """The installed version of ``package`` (``"not installed"`` when it is not; dermx's own is
    :data:`dermx.version.__version__`)."""
    if package == "dermx":
        return __version__
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def build_manifest(*, config: dict[str, Any], seeds: dict[str, int], data: dict[str, Any] | None,
                   command: list[str] | None = None) -> dict[str, Any]:
    """A manifest document; ``data`` is the data set's identity (:func:`dermx.data.data_identity`),
    ``command`` defaults to ``sys.argv``."""
    return {
        "versions": {"python": platform.python_version(), **{name: package_version(name) for name in PACKAGES}},
        "platform": platform.platform(),
        "seeds": seeds,
        "config": config,
        "data": data,
        "command": list(command if command is not None else sys.argv),
    }


def write_manifest(out: str | Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest`` (strict JSON) to ``out/manifest.json``."""
    return write_json(Path(out) / MANIFEST, manifest)


def read_manifest(run_dir: str | Path) -> dict[str, Any] | None:
    """The manifest of ``run_dir``; ``None`` when the run has none."""
    path = Path(run_dir) / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def manifest_rows(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """The manifest as ``(label, text)`` rows for a reader: versions, platform, seeds, data identity,
    command line and the configured sections (the full configuration stays in ``manifest.json``)."""
    rows = [("versions", ", ".join(f"{k} {v}" for k, v in manifest.get("versions", {}).items())),
            ("platform", str(manifest.get("platform", "–"))),
            ("seeds", ", ".join(f"{k} {v}" for k, v in manifest.get("seeds", {}).items()) or "–")]
    data = manifest.get("data")
    rows.append(("data identity", f"{data['identity']} ({data['files']} annotation, metadata and fold files of "
                 f"{data['name']})" if data else "–"))
    rows.append(("command", shlex.join(str(part) for part in manifest.get("command", [])) or "–"))
    rows.append(("configuration", ", ".join(manifest.get("config", {})) or "–"))
    return rows
