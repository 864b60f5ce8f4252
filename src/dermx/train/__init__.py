"""Training of DermX, DermX+ and diagnosis-only models with Lightning, and cross-validation."""

from dermx.train.config import TrainConfig, load_config
from dermx.train.cv import CVResult, run_cv
from dermx.train.datamodule import DermXDataModule, inner_split, kfold_split
from dermx.train.datasets import ImageDataset, Item, csv_items, dermxdb_items, folder_items, joint_transform
from dermx.train.fit import TrainResult, fit, predict_frame
from dermx.train.losses import DermXLoss, class_weight_tensor, guided_attention_loss
from dermx.train.module import DermXModule

__all__ = [
    "CVResult",
    "DermXDataModule",
    "DermXLoss",
    "DermXModule",
    "ImageDataset",
    "Item",
    "TrainConfig",
    "TrainResult",
    "class_weight_tensor",
    "csv_items",
    "dermxdb_items",
    "fit",
    "folder_items",
    "guided_attention_loss",
    "inner_split",
    "joint_transform",
    "kfold_split",
    "load_config",
    "predict_frame",
    "run_cv",
]
