"""Cells for Textual's `DataTable` on the catalogue screens (Transfers, History, Manifests).

A plain `str` cell is read by `DataTable` as Rich markup: a file name, a version or a message
holding ``[...]`` (they come from manifests and devices) would be drawn as markup, or fail to
draw. `texts` turns every cell into a `Text` first. `set_cell` updates one cell and widens its
column when the new value is longer (`update_cell` alone keeps the width and cuts the value;
its ``update_width`` re-measures the whole column when a value gets shorter, so it is asked
for only when the value is longer).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey


def text(value: object) -> Text:
    """A cell as `Text`: never parsed as markup."""
    return value if isinstance(value, Text) else Text(str(value))


def texts(values: Iterable[object]) -> tuple[Text, ...]:
    return tuple(text(v) for v in values)


def set_cell(table: DataTable[Any], row: str, column: str, value: object) -> None:
    """Update one cell; its column widens to hold a longer value (never narrows)."""
    cell = text(value)
    wider = cell.cell_len > table.columns[ColumnKey(column)].content_width
    table.update_cell(row, column, cell, update_width=wider)
