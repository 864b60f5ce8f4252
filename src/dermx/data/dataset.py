"""The DermXDB dataset: images, ratings, folds, masks and fused expert maps.

>>> db = load_dermxdb("path/to/dermxdb")                       # doctest: +SKIP
>>> stack = db.rater_stack("000498HB", size=(224, 224))        # (characteristic, rater, H, W) bool
>>> maps = db.fused_maps("000498HB", rule="mean", size=(224, 224))   # (characteristic, H, W)
"""

from __future__ import annotations

import struct
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from dermx import vocab
from dermx.data import reader
from dermx.data.cache import MaskCache, cache_key
from dermx.data.folds import Fold, assemble_folds
from dermx.data.fusion import FusionRule, fuse
from dermx.data.images import index_image_folder, load_rgb
from dermx.data.masks import Size, rasterise, read_mask_png, resize_mask
from dermx.data.records import DermXDBError, ImageRecord, LoadReport, Pass, Rating
from dermx.text import shorten

MaskSource = Literal["json", "png"]
RaterSelection = Literal["first", "repeat"] | Sequence[str]


@dataclass
class DermXDB:
    """A loaded DermXDB folder. Build it with :func:`load_dermxdb`."""

    root: Path
    images: dict[str, ImageRecord]
    ratings: list[Rating]
    masks: dict[reader.MaskKey, Path]
    ignored_instance_masks: int
    folds: dict[int, Fold]
    report: LoadReport
    image_dir: Path | None = None
    cache: MaskCache | None = None
    _by_stem: dict[str, list[Rating]] = field(init=False, repr=False)
    _by_pass: dict[Pass, list[str]] = field(init=False, repr=False)
    _image_files: dict[str, Path] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        by_stem: dict[str, list[Rating]] = defaultdict(list)
        for rating in self.ratings:
            by_stem[rating.stem].append(rating)
        self._by_stem = dict(by_stem)
        self._by_pass = {
            pass_: sorted({r.annotator for r in self.ratings if r.pass_ == pass_}, key=lambda a: (len(a), a))
            for pass_ in Pass}

    # ----- selection -------------------------------------------------------------------------
    def stems(self, *, with_metadata: bool = True) -> list[str]:
        """Image stems, sorted; by default only those with metadata (a reference diagnosis)."""
        return sorted(s for s, r in self.images.items() if r.has_metadata or not with_metadata)

    def annotators(self, pass_: Pass | str = Pass.FIRST) -> list[str]:
        """Annotator names (file prefixes) of one pass, sorted by rater number."""
        return list(self._by_pass[Pass(pass_)])

    def select_annotators(self, selection: RaterSelection = "first") -> list[str]:
        """``"first"`` (all first-pass raters), ``"repeat"`` (the repeat pass) or a list of names.

        Names may be annotators (``labeller3``, ``labeller32``) or rater numbers (``3``).
        """
        if isinstance(selection, str) and selection in ("first", "repeat"):
            return self.annotators(selection)
        known = {r.annotator for r in self.ratings}
        chosen = [s if str(s).startswith("labeller") else f"labeller{s}" for s in selection]
        unknown = [c for c in chosen if c not in known]
        if unknown:
            raise ValueError(f"unknown rater(s) {unknown}; this dataset has {sorted(known)}")
        return chosen

    def ratings_of(self, stem: str, annotators: Sequence[str] | None = None) -> list[Rating]:
        """The ratings of one image, in the order of ``annotators`` (default: first pass)."""
        chosen = self.annotators() if annotators is None else annotators
        by_annotator = {r.annotator: r for r in self._by_stem.get(stem, [])}
        return [by_annotator[a] for a in chosen if a in by_annotator]

    def fold(self, index: int) -> Fold:
        if index not in self.folds:
            raise ValueError(f"no fold {index}; folds are {sorted(self.folds)}")
        return self.folds[index]

    # ----- masks -----------------------------------------------------------------------------
    def _mask(self, rating: Rating, characteristic: str, source: MaskSource) -> np.ndarray:
        if source == "json":
            return rasterise(rating.shapes_of(characteristic), rating.width, rating.height)
        path = self.masks.get((rating.annotator, rating.stem, characteristic))
        if path is None:
            return np.zeros((rating.height, rating.width), dtype=bool)
        return read_mask_png(path, rating.width, rating.height)

    def rater_stack(
        self,
        stem: str,
        *,
        annotators: Sequence[str] | None = None,
        characteristics: Sequence[str] = vocab.CHARACTERISTICS,
        size: Size | None = None,
        source: MaskSource = "json",
    ) -> torch.Tensor:
        """Binary masks of one image as a (characteristic, rater, H, W) bool tensor.

        Raters are those of ``annotators`` (default: the first pass) who rated the image, in that
        order; a rater who did not outline a characteristic contributes an all-zero mask. ``size`` =
        (height, width) resizes by area coverage; ``None`` keeps the native size. With a cache, a
        second call reads one compressed file.
        """
        if stem not in self.images:
            raise KeyError(f"unknown image stem {stem!r}")
        if source not in ("json", "png"):
            raise ValueError(f"mask source must be 'json' or 'png', got {source!r}")
        ratings = self.ratings_of(stem, annotators)
        record = self.images[stem]
        out_size = size or (record.height, record.width)

        def compute() -> np.ndarray:
            stack = np.zeros((len(characteristics), len(ratings), *out_size), dtype=bool)
            for j, rating in enumerate(ratings):
                drawn = rating.characteristics
                for i, characteristic in enumerate(characteristics):
                    if characteristic in drawn:
                        stack[i, j] = resize_mask(self._mask(rating, characteristic, source), size)
            return stack

        if self.cache is None:
            return torch.from_numpy(compute())
        sources = [r.path for r in ratings] if source == "json" else [
            p for r in ratings for c in characteristics
            if (p := self.masks.get((r.annotator, stem, c))) is not None]
        key = cache_key((stem, tuple(r.annotator for r in ratings), tuple(characteristics), out_size,
                         source), sources)
        return torch.from_numpy(self.cache.get_or_compute(key, compute))

    def fused_maps(self, stem: str, rule: FusionRule = "mean", **stack_options: object) -> torch.Tensor:
        """Fused expert maps of one image, (characteristic, H, W) float32 (see :func:`fuse`)."""
        return fuse(self.rater_stack(stem, **stack_options), rule)  # type: ignore[arg-type]

    def union_map(self, stem: str, rule: FusionRule = "mean", **stack_options: object) -> torch.Tensor:
        """The union map of an image, (H, W): each rater's union over characteristics, then fused."""
        stack = self.rater_stack(stem, **stack_options)  # type: ignore[arg-type]
        return fuse(stack.any(dim=0), rule)

    # ----- images ----------------------------------------------------------------------------
    def image_path(self, stem: str) -> Path:
        """The file of an image in :attr:`image_dir`, matched by ``current_filename`` or stem."""
        if self.image_dir is None:
            raise DermXDBError(f"{self.root}: no image folder given (image_dir=...)")
        if self._image_files is None:
            self._image_files = index_image_folder(self.image_dir)
        record = self.images[stem]
        for key in (record.current_filename, stem):
            if key and key in self._image_files:
                return self._image_files[key]
        raise DermXDBError(f"{self.image_dir}: no image file for {stem!r}")

    def load_image(self, stem: str) -> Image.Image:
        """The RGB image of ``stem`` (EXIF-oriented), checked against the annotated size."""
        record = self.images[stem]
        return load_rgb(self.image_path(stem), (record.width, record.height))

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[ImageRecord]:
        return iter(self.images[s] for s in sorted(self.images))


#: Share of the annotated images below which ``metadata.csv`` is reported as covering far fewer images
#: than the annotations (the release: 566 of 630, 0.90).
MIN_METADATA_COVERAGE = 0.5


def _image_sizes(ratings: list[Rating], report: LoadReport, strict: bool) -> dict[str, tuple[int, int]]:
    """(width, height) of each annotated image; a size differing between its files is reported."""
    sizes: dict[str, tuple[int, int]] = {}
    for rating in ratings:
        size = sizes.setdefault(rating.stem, (rating.width, rating.height))
        if size != (rating.width, rating.height):
            report.add(rating.path, f"image size {rating.width}x{rating.height} differs from "
                       f"{size[0]}x{size[1]} in other annotation files", kind="size mismatch", strict=strict)
    return sizes


def _image_records(sizes: dict[str, tuple[int, int]], metadata: dict[str, dict[str, Any]], patients: dict[str, int],
                   test_folds: dict[str, int], report: LoadReport, metadata_path: Path,
                   strict: bool) -> dict[str, ImageRecord]:
    for stem in sorted(metadata.keys() - sizes.keys()):
        report.add(metadata_path, f"row for {shorten(stem)!r} has no annotation file: image skipped",
                   kind="metadata without annotations", strict=strict)
    covered = len(metadata.keys() & sizes.keys())
    if metadata_path.is_file() and covered < MIN_METADATA_COVERAGE * len(sizes):
        report.add(metadata_path, f"reference diagnoses for only {covered} of the {len(sizes)} annotated images: "
                   "the other images have no metadata row (rows lost or skipped above?)",
                   kind="metadata coverage", strict=strict)
    records: dict[str, ImageRecord] = {}
    for stem, (width, height) in sizes.items():
        row = metadata.get(stem, {})
        records[stem] = ImageRecord(
            stem=stem, width=width, height=height, diagnosis=row.get("diagnosis"),
            dataset=row.get("dataset"), skin_tone=row.get("skin_tone"), age=row.get("age"),
            patient_id=patients.get(stem), fold=test_folds.get(stem), current_filename=row.get("current_filename"),
            original_filename=row.get("original_filename"))
    return records


def _check_masks(masks: dict[reader.MaskKey, Path], ratings: list[Rating], report: LoadReport,
                 strict: bool, check_sizes: bool) -> None:
    localised = reader.localised_triples(ratings)
    for key in sorted(masks.keys() - localised):
        report.add(masks[key], "mask file with no matching polygon in its annotation file",
                   kind="mask without annotation", strict=strict)
    by_key = {(r.annotator, r.stem): r for r in ratings}
    for annotator, stem, characteristic in sorted(localised - masks.keys()):
        report.add(by_key[(annotator, stem)].path, f"{characteristic!r} outlined but no mask PNG",
                   kind="annotation without mask", strict=strict)
    if not check_sizes:
        return
    for (annotator, stem, _), path in masks.items():
        rating = by_key.get((annotator, stem))
        if rating is None:
            continue
        try:
            with Image.open(path) as image:
                size = image.size
                image.verify()  # every chunk read and its CRC checked: a truncated file fails here
        except (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError) as error:
            report.add(path, f"unreadable PNG ({error})", kind="unreadable mask", strict=strict)
            continue
        if size != (rating.width, rating.height):
            report.add(path, f"mask is {size[0]}x{size[1]}, annotated image is "
                       f"{rating.width}x{rating.height}", kind="mask size mismatch", strict=strict)


def load_dermxdb(
    root: str | Path,
    *,
    image_dir: str | Path | None = None,
    strict: bool = False,
    cache_dir: str | Path | None = None,
    check_mask_sizes: bool = True,
) -> DermXDB:
    """Load a DermXDB folder as published.

    ``strict=True`` raises :class:`DermXDBError` on the first problem; otherwise problems are
    collected in ``db.report`` (and the affected item skipped and counted there). ``cache_dir``
    enables the on-disk mask cache. ``check_mask_sizes`` opens every mask PNG to compare its size with
    the annotated one and verifies the file (every chunk present up to the end, CRCs correct) without
    decoding its pixels: about 0.1 s more for the release's 9,363 masks.
    """
    root = Path(root)
    if not (root / reader.ANNOTATIONS_DIR).is_dir():
        raise DermXDBError(f"{root}: not a DermXDB folder (no {reader.ANNOTATIONS_DIR}/ folder)")
    report = LoadReport()
    ratings = reader.read_annotations(root, report, strict=strict)
    sizes = _image_sizes(ratings, report, strict)
    metadata = reader.read_metadata(root, report, strict=strict)
    split = assemble_folds(reader.read_folds(root, report, strict=strict), sizes.keys(), root / reader.FOLDS_DIR,
                           report, strict=strict)
    masks, ignored = reader.index_masks(root, report, strict=strict)
    if not masks and not (root / reader.MASKS_DIR).is_dir():
        report.add(root / reader.MASKS_DIR, "mask folder is missing", kind="missing file", strict=strict)
    images = _image_records(sizes, metadata, split.patients, split.test_fold, report, root / reader.METADATA_FILE,
                            strict)
    _check_masks(masks, ratings, report, strict, check_mask_sizes)
    return DermXDB(
        root=root, images=images, ratings=ratings, masks=masks, ignored_instance_masks=ignored,
        folds=split.folds, report=report, image_dir=Path(image_dir) if image_dir else None,
        cache=MaskCache(Path(cache_dir)) if cache_dir else None)
