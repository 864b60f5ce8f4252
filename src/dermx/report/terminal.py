"""The headline table of a benchmark summary for the terminal (rich)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from dermx.report.html import headline_columns, headline_frame

#: Short terminal headers of the headline columns (keys of :data:`dermx.report.html.HEADLINE_COLUMNS`).
TERMINAL_COLUMNS: dict[str, str] = {
    "source": "source", "diagnosis_f1": "dx F1", "identification_f1": "id F1", "char_dice": "char Dice",
    "char_sensitivity": "char sens", "char_specificity": "char spec", "union_dice": "dx-map Dice",
    "pointing": "pointing", "char_dice_drawn": "Dice vs drawn", "pointing_drawn": "pointing vs drawn"}


def headline_table(summary: dict[str, Any]) -> Table:
    """The report's headline table for the terminal."""
    frame = headline_frame(summary)
    columns = headline_columns(summary)
    shown = list(columns.values())
    table = Table(title="Headline (95 % CI over images; raters: mean ± SD)")
    for key, column in columns.items():
        table.add_column(TERMINAL_COLUMNS[key], justify="left" if column == "source" else "right")
    for _, row in frame.iterrows():
        table.add_row(*(str(row[c]).replace(" [", "\n[") for c in shown),
                      style="dim" if row["type"] == "baseline" else None)
    return table
