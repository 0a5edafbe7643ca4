"""The History screen: every event of every device, filterable, exportable to CSV or JSON lines.

The table is a `RowTable` (it draws only the rows on screen, from the entries): new history
entries are appended as they come (the table is never refilled for an event); entries still
waiting in the outbox repaint as "sent" when the connector confirms them. The rows are
refilled only when the filter changes (a pass over at most 5,000 entries, no drawing). Newest
entries are at the bottom; the cursor follows them while it sits on the last row.

`/` types a filter (`otatui.tui.history_filter`: words, ``device:``, ``source:``, ``dir:``,
``is:error``, ``is:unsent``), `x` and `u` toggle errors only and not yet sent, `e` exports the
stored history (of the filter's device, if it names one) through the backend into a file chosen
in the `ExportDialog`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.timer import Timer
from textual.widgets import Input, Static

from otatui.tui.backend import BackendError
from otatui.tui.backend import ExportFormat as FileFormat
from otatui.tui.history_filter import HistoryFilter
from otatui.tui.records import NOT_SENT, HistoryEntry
from otatui.tui.screens.base import ScreenCommand, StateScreen
from otatui.tui.screens.catalogue_keys import catalogue_bindings
from otatui.tui.screens.history_cells import (
    COLUMNS,
    DIRECTION_WORDS,
    message_text,
    row_cells,
    status_cell,
    widths,
)
from otatui.tui.widgets.chrome import ota_footer, ota_header
from otatui.tui.widgets.export_dialog import ExportChoice, ExportDialog, ExportFormat
from otatui.tui.widgets.filter_input import FilterInput
from otatui.tui.widgets.row_table import RowTable

EXPORT_FORMATS: dict[ExportFormat, FileFormat] = {
    ExportFormat.CSV: "csv",
    ExportFormat.JSON_LINES: "json",
}
DEFAULT_EXPORT = "otatui-history.csv"
APPEND_BATCH = 250
"""Rows appended per redraw (the rest follow on a short timer)."""
APPEND_DELAY_S = 0.05
FILTER_DELAY_S = 0.15
"""The filter applies when typing pauses this long (or at once on Enter)."""


class HistoryScreen(StateScreen):
    """All events of all devices, oldest at the top, newest at the bottom."""

    BINDINGS = catalogue_bindings(
        "history.filter",
        "history.errors",
        "history.unsent",
        "history.export",
        "history.open",
        "history.clear",
    )

    DEFAULT_CSS = """
    HistoryScreen #history-filter { height: 3; }
    HistoryScreen #history-bar { height: 1; padding: 0 1; }
    HistoryScreen #history-table { height: 1fr; }
    HistoryScreen #history-detail {
        height: 3; padding: 0 1; border-top: solid $panel-lighten-2;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self.filter = HistoryFilter()
        self.message = ""
        self.exporting = False
        self._rows: dict[str, HistoryEntry] = {}
        self._backlog: deque[HistoryEntry] = deque()
        self._append_timer: Timer | None = None
        self._filter_timer: Timer | None = None
        self._unsent: dict[str, HistoryEntry] = {}
        self._last: HistoryEntry | None = None
        self._seq = 0
        self._drawn_history = -1

    def compose(self) -> ComposeResult:
        yield ota_header("History")
        filt = FilterInput(
            placeholder="filter: words, device:NAME source:serial dir:out is:error is:unsent",
            id="history-filter",
        )
        filt.cursor_blink = not self.ota.frozen
        yield filt
        yield Static("", id="history-bar", markup=False)
        yield RowTable(COLUMNS, self._row_cells, self._row_revision, id="history-table")
        yield Static("", id="history-detail", markup=False)
        yield ota_footer()

    def on_mount(self) -> None:
        self.query_one("#history-filter", Input).display = False
        self.rebuild()
        self.table.focus()

    @property
    def table(self) -> RowTable:
        return self.query_one("#history-table", RowTable)

    def _row_cells(self, key: str) -> tuple[Text, ...]:
        return row_cells(self._rows[key], self._clock, self.app.no_color)

    def _row_revision(self, key: str) -> object:
        return self._rows[key].cloud  # the only cell that changes (unsent, then sent)

    def _clock(self, when: float) -> str:
        return time.strftime("%m-%d %H:%M:%S", self.backend.local_time(when))

    # -- drawing -------------------------------------------------------------------------------

    @property
    def limit(self) -> int:
        """Rows the table may hold before it is refilled from the state (which keeps the
        newest `maxlen`): twice what the state keeps, so trimming is rare and never per row."""
        return 2 * (self.state.history.maxlen or 5000)

    def rebuild(self) -> None:
        """Refill the table from the state's history (on mount and when the filter changes)."""
        table = self.table
        self._rows.clear()
        self._unsent.clear()
        self._backlog.clear()
        if self._append_timer is not None:
            self._append_timer.stop()
            self._append_timer = None
        history = self.state.history
        shown = [e for e in history if self.filter.matches(e)]
        self._widen(shown)
        keys = [self._add(e) for e in shown]
        self._last = history[-1] if history else None
        self._drawn_history = self.state.history_version
        table.set_rows(keys)
        table.move_cursor(row=table.row_count - 1)
        self._update_bar()
        self._show_detail()

    def _add(self, e: HistoryEntry) -> str:
        """Keep an entry under a new row key (the table shows it when given the key)."""
        self._seq += 1
        key = str(self._seq)
        self._rows[key] = e
        if e.cloud == NOT_SENT:
            self._unsent[key] = e
        return key

    def _widen(self, entries: Iterable[HistoryEntry]) -> None:
        """Columns grow to hold longer names, versions, statuses (from the entries' strings,
        nothing drawn)."""
        widest: dict[str, int] = {}
        for e in entries:
            for column, width in widths(e):
                if width > widest.get(column, 0):
                    widest[column] = width
        for column, width in widest.items():
            self.table.widen(column, width)

    def _new_entries(self) -> list[HistoryEntry] | None:
        """Entries appended since the last draw, oldest first; None when the last one drawn
        is gone (more arrived than the state keeps): then the table is refilled."""
        history = self.state.history
        if self._last is None:
            return list(history)
        new: list[HistoryEntry] = []
        for e in reversed(history):
            if e is self._last:
                new.reverse()
                return new
            new.append(e)
        return None

    def refresh_state(self) -> None:
        """Queue what is new, mark delivered reports sent; never a rebuild for an event."""
        if self.state.history_version == self._drawn_history:
            return
        self._drawn_history = self.state.history_version
        new = self._new_entries()
        if new is None:
            self.rebuild()
            return
        if self._mark_sent():
            return  # rebuilt: an "unsent only" filter dropped the delivered rows
        if new:
            self._last = new[-1]
            self._backlog.extend(e for e in new if self.filter.matches(e))
        self._append_some()

    def _append_some(self) -> None:
        """Append at most `APPEND_BATCH` waiting entries; the rest follow on a short timer, so
        a flood of events never holds up a key press. A backlog longer than what the state
        keeps is dropped for a refill from the state."""
        self._append_timer = None
        if len(self._backlog) > (self.state.history.maxlen or self.limit):
            self.rebuild()
            return
        table = self.table
        follow = table.row_count == 0 or table.cursor_row >= table.row_count - 1
        batch = [self._backlog.popleft() for _ in range(min(APPEND_BATCH, len(self._backlog)))]
        self._widen(batch)
        keys = [self._add(e) for e in batch]
        if len(self._rows) > self.limit:
            self.rebuild()
            return
        table.append_rows(keys, follow=follow)
        if self._backlog:
            self._append_timer = self.set_timer(APPEND_DELAY_S, self._append_some)
        self._update_bar()

    def _mark_sent(self) -> bool:
        """Update the cloud cell of rows delivered since; True when the table was rebuilt."""
        delivered = [key for key, e in self._unsent.items() if e.cloud != NOT_SENT]
        if not delivered:
            return False
        if self.filter.unsent_only:
            self.rebuild()
            return True
        for key in delivered:
            del self._unsent[key]
        self.table.refresh_rows(delivered)
        if self.table.cursor_name in delivered:
            self._show_detail()
        return False

    def _update_bar(self) -> None:
        text = f"{self.table.row_count} entries · filter: {self.filter.describe()}"
        if self.message:
            text = f"{self.message} · {text}"
        self.query_one("#history-bar", Static).update(Text(text))

    # -- filter --------------------------------------------------------------------------------

    def set_filter(self, query: str) -> None:
        new = HistoryFilter.parse(query)
        if new != self.filter:
            self.filter = new
            self.rebuild()

    def action_filter(self) -> None:
        filt = self.query_one("#history-filter", Input)
        filt.display = True
        filt.focus()

    @on(Input.Changed, "#history-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        """Refill once typing pauses (a refill of thousands of rows takes a moment)."""
        if self._filter_timer is not None:
            self._filter_timer.stop()
        value = event.value
        self._filter_timer = self.set_timer(FILTER_DELAY_S, lambda: self.set_filter(value))

    @on(Input.Submitted, "#history-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None
        self.set_filter(event.value)
        if not event.value.strip():
            event.input.display = False
        self.table.focus()

    def action_clear_filter(self) -> None:
        filt = self.query_one("#history-filter", Input)
        filt.value = ""
        filt.display = False
        self.table.focus()
        self.set_filter("")

    def _toggle_token(self, token: str) -> None:
        filt = self.query_one("#history-filter", Input)
        words = filt.value.split()
        words = [w for w in words if w != token] if token in words else [*words, token]
        filt.value = " ".join(words)
        filt.display = bool(words)
        self.set_filter(filt.value)

    def action_toggle_errors(self) -> None:
        self._toggle_token("is:error")

    def action_toggle_unsent(self) -> None:
        self._toggle_token("is:unsent")

    # -- export --------------------------------------------------------------------------------

    def action_export(self) -> None:
        if self.exporting:
            self.notify("an export is already running", severity="warning")
            return
        device = self.filter.device
        what = f"history of {device}" if device else "history of every device"
        self.app.push_screen(ExportDialog(DEFAULT_EXPORT, what=what), self._export_chosen)

    def _export_chosen(self, choice: ExportChoice | None) -> None:
        if choice is not None:
            self.export(choice.path, choice.format, self.filter.device)

    @work(exclusive=True, group="export")
    async def export(self, path: Path, fmt: ExportFormat, device: str | None) -> None:
        self.exporting = True
        self._set_message(f"exporting to {path}…")
        try:
            count = await self.backend.export_history(path, EXPORT_FORMATS[fmt], device)
        except BackendError as exc:
            self._set_message(f"!! export failed: {exc}")
            self.notify(f"export failed: {exc}", severity="error")
            return
        finally:
            self.exporting = False
        self._set_message(f"exported {count} rows to {path} ({fmt.label})")
        self.notify(f"exported {count} rows to {path}")

    def _set_message(self, line: str) -> None:
        self.message = line
        self._update_bar()

    # -- open ----------------------------------------------------------------------------------

    def selected_entry(self) -> HistoryEntry | None:
        key = self.table.cursor_name
        return None if key is None else self._rows.get(key)

    def action_open_device(self) -> None:
        e = self.selected_entry()
        if e is not None:
            self.open_device(e.device)

    @on(RowTable.Highlighted, "#history-table")
    def _highlighted(self) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        e = self.selected_entry()
        detail = self.query_one("#history-detail", Static)
        if e is None:
            detail.update("")
            return
        text = Text(f"{self._clock(e.time)} {e.device} ", style="bold")
        text.append_text(status_cell(e, self.app.no_color))
        if e.version:
            text.append(f" {e.version}")
        text.append(f" · {DIRECTION_WORDS.get(e.direction, e.direction)} via {e.source or '-'}")
        if e.cloud:
            text.append(f" · {e.cloud}")
        message = message_text(e)
        if message:
            text.append(f"\n{message}")
        detail.update(text)

    @on(RowTable.Selected, "#history-table")
    def _row_selected(self) -> None:
        self.action_open_device()

    def open_device(self, name: str) -> None:
        from otatui.tui.screens.device import DeviceScreen

        self.app.push_screen(DeviceScreen(name))

    def screen_commands(self) -> Iterable[ScreenCommand]:
        yield ScreenCommand(
            "Export the history", "CSV or JSON lines, into a file", self.action_export
        )
        yield ScreenCommand(
            "Errors only", "Toggle is:error in the filter", self.action_toggle_errors
        )
        yield ScreenCommand(
            "Not yet sent only", "Toggle is:unsent in the filter", self.action_toggle_unsent
        )
        yield ScreenCommand("Clear the filter", "Show every entry", self.action_clear_filter)
        e = self.selected_entry()
        if e is not None:
            yield ScreenCommand(f"Open {e.device}", "Show this device", self.action_open_device)
