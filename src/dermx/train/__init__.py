"""Training of DermX, DermX+ and diagnosis-only models with Lightning, and cross-validation."""

from dermx._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(("TrainConfig", "load_config"), ".config"),
        **dict.fromkeys(("CVResult", "run_cv"), ".cv"),
        **dict.fromkeys(("Collection", "collection_of", "read_folder", "read_table"), ".collection"),
        **dict.fromkeys(("DermXDataModule",), ".datamodule"),
        **dict.fromkeys(("inner_split", "kfold_split", "parts_digest"), ".splits"),
        **dict.fromkeys(
            ("ImageDataset", "Item", "dermxdb_items"), ".datasets"
        ),
        **dict.fromkeys(("TrainResult", "fit", "predict_frame"), ".fitting"),
        **dict.fromkeys(("FoldMaps", "FoldMapsError", "compute_fold_maps", "load_fold_maps", "save_fold_maps"),
                        ".fold_maps"),
        **dict.fromkeys(("DermXLoss", "class_weight_tensor", "guided_attention_loss", "maps_at_grid"), ".losses"),
        **dict.fromkeys(("DermXModule",), ".module"),
    },
)
