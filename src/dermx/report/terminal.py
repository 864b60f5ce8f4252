"""The headline table of a benchmark summary for the terminal (rich).

The terminal shows the columns a reader decides on (diagnosis F1, characteristic-map Dice, pointing
game and, on synthetic data, Dice against the drawn lesions), each estimate over two lines (mean, then
its CI), so that the table fits an 80-column terminal; the report and ``headline.csv`` hold every column.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

from dermx.report.html import headline_columns, headline_frame

#: Short terminal headers of the headline columns shown (keys of :data:`dermx.report.html.HEADLINE_COLUMNS`).
TERMINAL_COLUMNS: dict[str, str] = {
    "source": "source", "diagnosis_f1": "dx F1", "char_dice": "char-map Dice", "pointing": "pointing",
    "char_dice_drawn": "Dice vs drawn"}


def headline_table(summary: dict[str, Any]) -> Table:
    """The report's headline table for the terminal (module docstring)."""
    frame = headline_frame(summary)
    columns = {k: v for k, v in headline_columns(summary).items() if k in TERMINAL_COLUMNS}
    table = Table(title="Headline (95 % CI over patients; conditional raters: mean ± SD)")
    for key in columns:
        table.add_column(TERMINAL_COLUMNS[key], justify="left" if key == "source" else "right",
                         no_wrap=key == "source")
    for _, row in frame.iterrows():
        table.add_row(*(str(row[label]).replace(" [", "\n[") for label in columns.values()),
                      style="dim" if row["type"] == "baseline" else None)
    return table
