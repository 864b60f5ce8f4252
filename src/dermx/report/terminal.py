"""The headline table of a benchmark summary for the terminal (rich)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from dermx.report.html import headline_frame

TERMINAL_COLUMNS: tuple[str, ...] = ("source", "dx F1", "id F1", "char Dice", "char sens", "char spec",
                                     "dx-map Dice", "pointing")


def headline_table(summary: dict[str, Any]) -> Table:
    """The report's headline table for the terminal."""
    frame = headline_frame(summary)
    shown = [c for c in frame.columns if c != "type"]
    table = Table(title="Headline (95 % CI over images; raters: mean ± SD)")
    for column, short in zip(shown, TERMINAL_COLUMNS, strict=True):
        table.add_column(short, justify="left" if column == "source" else "right")
    for _, row in frame.iterrows():
        table.add_row(*(str(row[c]).replace(" [", "\n[") for c in shown),
                      style="dim" if row["type"] == "baseline" else None)
    return table
