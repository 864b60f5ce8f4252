"""Training's terminal tables: the data summary before training, ``dermx cv``'s per-fold metrics."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console

from dermx import vocab
from dermx.train.cv import fold_table
from dermx.train.datamodule import split_table
from dermx.train.datasets import Item


def test_split_table_counts_images_per_split_and_class() -> None:
    def item(key: str, dx: int) -> Item:
        return Item(key, Path(key), dx, "patient")

    parts = {"train": [item("a", 0), item("b", 2), item("c", 2)], "val": [item("d", 5)], "test": []}
    console = Console(width=140, record=True)
    console.print(split_table(parts, vocab.DIAGNOSES))
    rows = {line.split()[1]: line.split("│")[2:-1] for line in console.export_text().splitlines()
            if line.startswith("│")}
    assert [c.strip() for c in rows["train"]] == ["3", "1", "0", "2", "0", "0", "0"]
    assert [c.strip() for c in rows["val"]] == ["1", "0", "0", "0", "0", "0", "1"]
    assert [c.strip() for c in rows["test"]] == ["0"] * 7


def test_fold_table_lists_folds_and_mean_sd_of_test_metrics() -> None:
    summary = pd.DataFrame({"fold": [0, 1, 2], "test/dx_f1": [0.8, 0.9, 1.0], "val/loss": [1.0, 2.0, 3.0]})
    console = Console(width=100, record=True)
    console.print(fold_table(summary))
    text = console.export_text()
    assert "dx_f1" in text and "loss" not in text  # val/ columns stay in summary.csv
    assert "0.800" in text and "1.000" in text and "mean ± SD" in text and "0.900 ± 0.100" in text


def test_one_fold_has_no_sd() -> None:
    console = Console(width=100, record=True)
    console.print(fold_table(pd.DataFrame({"fold": [3], "test/acc": [0.5]})))
    text = console.export_text()
    assert "mean" in text and "±" not in text and "0.500" in text
