"""DermXDB data layer: reader, records, masks, fusion, cache and images."""

from dermx.data.dataset import DermXDB, Fold, load_dermxdb
from dermx.data.fusion import FUSION_RULES, FusionRule, fuse, union
from dermx.data.images import load_rgb
from dermx.data.masks import rasterise, read_mask_png, resize_mask
from dermx.data.records import (
    DermXDBError,
    ImageRecord,
    Issue,
    LoadReport,
    Pass,
    Rating,
    Shape,
)

__all__ = [
    "FUSION_RULES",
    "DermXDB",
    "DermXDBError",
    "Fold",
    "FusionRule",
    "ImageRecord",
    "Issue",
    "LoadReport",
    "Pass",
    "Rating",
    "Shape",
    "fuse",
    "load_dermxdb",
    "load_rgb",
    "rasterise",
    "read_mask_png",
    "resize_mask",
    "union",
]
