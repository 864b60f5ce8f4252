"""DermXDB data layer: reader, records, masks, fusion, reference maps, cache and images."""

from dermx._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(("DermXDB", "Fold", "load_dermxdb"), ".dataset"),
        **dict.fromkeys(("FUSION_RULES", "FusionRule", "fuse", "union"), ".fusion"),
        **dict.fromkeys(("data_identity", "dermxdb_identity"), ".identity"),
        **dict.fromkeys(("load_rgb", "pixel_digest", "to_rgb"), ".images"),
        **dict.fromkeys(("rasterise", "read_mask_png", "resize_mask"), ".masks"),
        **dict.fromkeys(("DRAWN_CHANNELS", "REFERENCE_CHANNELS", "RaterMasks", "ReferenceMaps"), ".references"),
        **dict.fromkeys(("DermXDBError", "ImageRecord", "Issue", "LoadReport", "Pass", "Rating", "Shape"), ".records"),
    },
)
