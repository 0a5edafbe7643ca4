"""The Transfers screen: every download into the cache and every push over a link, in progress
and recently finished, with a progress bar, bytes, rate and ETA.

Active transfers come first in a stable order (rows do not jump while bytes move), then the
finished ones, newest first. A redraw only updates the cells whose text changed; the table is
refilled only when a transfer starts or finishes (the set or order of rows changed).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from otatui.tui import cells
from otatui.tui.catalogue import TransferRow, TransferState, transfer_rows
from otatui.tui.cells import tone
from otatui.tui.screens.base import ScreenCommand, StateScreen
from otatui.tui.screens.catalogue_keys import catalogue_bindings
from otatui.tui.screens.table_cells import set_cell, texts
from otatui.tui.widgets.chrome import ota_footer, ota_header

COLUMNS: tuple[tuple[str, str], ...] = (
    ("state", "State"),
    ("device", "Device"),
    ("file", "File"),
    ("progress", "Progress"),
    ("rate", "Rate"),
    ("eta", "ETA"),
    ("bytes", "Bytes"),
    ("dir", "Dir"),
    ("message", "Message"),
)
STATE_STYLES = {
    TransferState.ACTIVE: "yellow",
    TransferState.OK: "green",
    TransferState.FAILED: "bold red",
    TransferState.STOPPED: "magenta",
}
DIRECTION_WORDS = {"download": "down", "push": "push"}


def bytes_text(row: TransferRow) -> str:
    if row.total is None:
        return cells.size(row.done)
    return f"{cells.size(row.done)} / {cells.size(row.total)}"


def row_cells(row: TransferRow, now: float, mono: bool = False) -> tuple[Text, ...]:
    """The cells of one transfer, in `COLUMNS` order (every one a `Text`: a file name or a
    message holding ``[...]`` is shown as it is, never read as markup)."""
    active = row.state is TransferState.ACTIVE
    message = row.message
    if not active:
        when = f"finished {cells.ago(row.updated, now)}"
        message = f"{when}: {message}" if message else when
    progress = cells.bar(row.fraction)
    if not progress:
        progress = "size not known" if active else "-"
    return texts(
        (
            Text(
                f"{row.state.marker} {row.state.value}", style=tone(STATE_STYLES[row.state], mono)
            ),
            row.device,
            row.file_text,
            progress,
            cells.rate(row.rate) if active else "-",
            cells.duration(row.eta) if active else "-",
            bytes_text(row),
            DIRECTION_WORDS.get(row.direction, row.direction),
            Text(
                message, style=tone("bold red", mono) if row.state is TransferState.FAILED else ""
            ),
        )
    )


def summary(rows: list[TransferRow], show_finished: bool) -> str:
    active = [r for r in rows if r.state is TransferState.ACTIVE]
    downloads = sum(1 for r in active if r.direction == "download")
    pushes = len(active) - downloads
    finished = len(rows) - len(active)
    failed = sum(1 for r in rows if r.state is TransferState.FAILED)
    rate = sum(r.rate for r in active)
    text = f"{len(active)} active ({downloads} down, {pushes} push)"
    if active:
        text += f" · {cells.rate(rate)} in all"
    text += f" · {finished} finished"
    if failed:
        text += f" ({failed} failed !!)"
    if not show_finished:
        text += " (hidden: f shows them)"
    return text


def _plain(values: tuple[Text, ...]) -> tuple[str, ...]:
    return tuple(v.plain for v in values)


class TransfersScreen(StateScreen):
    """All payload files moving, and those that moved recently."""

    BINDINGS = catalogue_bindings("transfers.open", "transfers.finished")

    DEFAULT_CSS = """
    TransfersScreen #transfers-bar { height: 1; padding: 0 1; }
    TransfersScreen #transfers-table { height: 1fr; }
    TransfersScreen #transfers-empty { padding: 1 2; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.show_finished = True
        self.rows: list[TransferRow] = []
        self._shown: dict[str, tuple[str, ...]] = {}
        self._drawn: tuple[int, int] | None = None

    def compose(self) -> ComposeResult:
        yield ota_header("Transfers")
        yield Static("", id="transfers-bar", markup=False)
        table: DataTable[Any] = DataTable(
            id="transfers-table", cursor_type="row", zebra_stripes=True
        )
        yield table
        yield Static(
            "Nothing is moving and nothing moved recently: downloads and link pushes show here.",
            id="transfers-empty",
            markup=False,
        )
        yield ota_footer()

    def on_mount(self) -> None:
        table = self.table
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.refresh_state()
        table.focus()

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#transfers-table", DataTable)

    # -- drawing -------------------------------------------------------------------------------

    def refresh_state(self) -> None:
        """Redraw after a change, and once a second for the "finished … ago" times."""
        key = (self.state.version, int(self.backend.now()))
        if key == self._drawn:
            return
        self._drawn = key
        self.redraw()

    def redraw(self) -> None:
        every = transfer_rows(self.state.transfers)
        seen: set[str] = set()
        rows: list[TransferRow] = []
        for r in every:
            if r.row_key in seen:
                continue
            seen.add(r.row_key)
            if self.show_finished or r.state is TransferState.ACTIVE:
                rows.append(r)
        self.rows = rows
        now = self.backend.now()
        values = [row_cells(r, now, self.app.no_color) for r in rows]
        keys = [r.row_key for r in rows]
        table = self.table
        if keys == list(self._shown):
            for key, cells_now in zip(keys, values, strict=True):
                plain = _plain(cells_now)
                before = self._shown[key]
                for (column, _label), value, new, old in zip(
                    COLUMNS, cells_now, plain, before, strict=True
                ):
                    if new != old:
                        set_cell(table, key, column, value)
                self._shown[key] = plain
        else:
            selected = self.selected_key()
            table.clear()
            self._shown = {}
            for key, cells_now in zip(keys, values, strict=True):
                table.add_row(*cells_now, key=key)
                self._shown[key] = _plain(cells_now)
            if selected in self._shown:
                table.move_cursor(row=keys.index(selected))
        self.query_one("#transfers-empty").display = not rows
        bar = summary(every, self.show_finished)
        self.query_one("#transfers-bar", Static).update(Text(bar))

    def selected_key(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        row = min(max(table.cursor_row, 0), table.row_count - 1)
        return self.rows[row].row_key if row < len(self.rows) else None

    def selected_row(self) -> TransferRow | None:
        key = self.selected_key()
        return next((r for r in self.rows if r.row_key == key), None)

    # -- actions -------------------------------------------------------------------------------

    def action_toggle_finished(self) -> None:
        self.show_finished = not self.show_finished
        self.redraw()

    def action_open_device(self) -> None:
        row = self.selected_row()
        if row is not None:
            self.open_device(row.device)

    @on(DataTable.RowSelected, "#transfers-table")
    def _row_selected(self) -> None:
        self.action_open_device()

    def open_device(self, name: str) -> None:
        from otatui.tui.screens.device import DeviceScreen

        self.app.push_screen(DeviceScreen(name))

    def screen_commands(self) -> Iterable[ScreenCommand]:
        row = self.selected_row()
        if row is not None:
            yield ScreenCommand(
                f"Open {row.device}", "Show the device of this transfer", self.action_open_device
            )
        label = "Hide" if self.show_finished else "Show"
        yield ScreenCommand(
            f"{label} finished transfers", "Recently finished ones", self.action_toggle_finished
        )
