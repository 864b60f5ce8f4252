"""Helpers for tests: write small DermXDB folders in the published layout."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw


def polygon(points: Sequence[tuple[float, float]]) -> dict[str, Any]:
    xs, ys = zip(*points, strict=True)
    return {"bounding_box": {"x": min(xs), "y": min(ys), "w": max(xs) - min(xs), "h": max(ys) - min(ys)},
            "polygon": {"path": [{"x": x, "y": y} for x, y in points]}}


def complex_polygon(rings: Sequence[Sequence[tuple[float, float]]]) -> dict[str, Any]:
    return {"complex_polygon": {"path": [[{"x": x, "y": y} for x, y in ring] for ring in rings]}}


def ring_mask(rings: Sequence[Sequence[tuple[float, float]]], width: int, height: int) -> np.ndarray:
    """Even-odd fill of rings, drawn independently of dermx (numpy XOR of PIL polygons)."""
    out = np.zeros((height, width), dtype=bool)
    for ring in rings:
        image = Image.new("L", (width, height), 0)
        ImageDraw.Draw(image).polygon(list(ring), fill=255, outline=255)
        out ^= np.asarray(image) > 0
    return out


class DermXDBWriter:
    """Writes a small DermXDB folder in the published layout, one call per file kind."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "masks" / "masks").mkdir(parents=True, exist_ok=True)
        (root / "folds").mkdir(exist_ok=True)

    def annotation(self, annotator: str, stem: str, annotations: list[dict[str, Any]],
                   size: tuple[int, int] = (40, 30), masks: bool = True) -> Path:
        """Write ``labeller_X_stem.json`` (size = width, height) and, by default, its merged masks."""
        width, height = size
        path = self.root / "annotations" / f"{annotator}_{stem}.json"
        path.write_text(json.dumps({"dataset": "test", "image": {"width": width, "height": height,
                                    "filename": f"{annotator}_{stem}.jpg"}, "annotations": annotations}))
        if masks:
            merged: dict[str, np.ndarray] = {}
            for a in annotations:
                rings = ([a["polygon"]["path"]] if "polygon" in a else
                         a["complex_polygon"]["path"] if "complex_polygon" in a else None)
                if rings is None:
                    continue
                mask = ring_mask([[(p["x"], p["y"]) for p in r] for r in rings], width, height)
                merged[a["name"]] = merged.get(a["name"], np.zeros_like(mask)) | mask
            for name, mask in merged.items():
                self.mask(annotator, stem, name, mask)
        return path

    def mask(self, annotator: str, stem: str, name: str, mask: np.ndarray) -> Path:
        path = self.root / "masks" / "masks" / f"{annotator}_{stem}_{name}.png"
        Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(path)
        return path

    def metadata(self, rows: list[tuple[str, str]], tone: str = "light") -> Path:
        """rows: (stem, diagnosis)."""
        lines = ["original_filename;dataset;diagnosis;current_filename;skin_tone;age"]
        lines += [f"{s}.jpg;SD-260;{d};{s}.jpeg;{tone};young" for s, d in rows]
        path = self.root / "metadata.csv"
        path.write_text("\n".join(lines) + "\n")
        return path

    def folds(self, splits: list[tuple[list[tuple[str, str, int]], list[tuple[str, str, int]]]]) -> None:
        """splits[k] = (train rows, test rows), rows = (stem, diagnosis, patient_id)."""
        for k, (train, test) in enumerate(splits):
            for part, rows in (("train", train), ("test", test)):
                lines = [",original_filename,dataset,diagnosis,current_filename,patient_id"]
                lines += [f"{i},{s}.jpg,SD-260,{d},{s}.jpeg,{p}" for i, (s, d, p) in enumerate(rows)]
                (self.root / "folds" / f"metadata_fold_{k}_{part}.csv").write_text("\n".join(lines) + "\n")


def plain(output: str) -> str:
    """A command's output with Rich's box borders and line wrapping removed, for substring checks."""
    return re.sub(r"[\s│╭╮╰╯─]+", " ", output)


def clean_dermxdb(writer: DermXDBWriter, build: Callable[[DermXDBWriter], None]) -> Path:
    """The root of a small DermXDB that ``build`` writes with ``writer``, checked to load strictly with
    no problem (the clean start a mutation test alters)."""
    from dermx.data import load_dermxdb

    build(writer)
    assert load_dermxdb(writer.root, strict=True).report.ok
    return writer.root
