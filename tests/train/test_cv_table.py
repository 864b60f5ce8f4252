"""``dermx cv``'s terminal table: per-fold test metrics and their mean ± SD."""

from __future__ import annotations

import pandas as pd
from rich.console import Console

from dermx.train.cv import fold_table


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
