"""The Fleet screen: one table row per device, sorted and filtered, updated cell by cell.

The table is a `DataTable` (it renders only the visible rows). After each batch of events only
the rows of devices changed since the last draw are recomputed, and only cells whose text changed
are updated; the whole table is rebuilt only when the filter or the sort order changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Input, Static
from textual.widgets.data_table import ColumnKey

from otatui.tui import cells
from otatui.tui.keys import bindings
from otatui.tui.records import Category, DeviceView
from otatui.tui.screens.base import ScreenCommand, StateScreen
from otatui.tui.widgets.chrome import ota_footer, ota_header

COLUMNS: tuple[tuple[str, str], ...] = (
    ("state", "State"),
    ("name", "Name"),
    ("connection", "Connection"),
    ("installed", "Installed"),
    ("offered", "Offered"),
    ("status", "Last status"),
    ("progress", "Progress"),
    ("seen", "Last seen"),
    ("role", "Role"),
    ("route", "Link"),
    ("identity", "Identity"),
)
STATE_FILTERS: tuple[Category | None, ...] = (None, *Category)
SORTS: tuple[str, ...] = ("name", "state", "last seen", "progress")
_STATE_ORDER = {c: i for i, c in enumerate(Category)}
_SORT_COLUMN = {"state": "state", "last seen": "seen", "progress": "progress"}
"""The column whose change moves a row in each order (none for the name order)."""


def row_cells(d: DeviceView, now: float, mono: bool = False) -> tuple[Text, ...]:
    """The table cells of one device, in `COLUMNS` order.

    Every cell is a `Text`: a plain string would be parsed as Rich markup, so a version or a
    name holding ``[...]`` (they come from the cloud) would be drawn as markup, and parsing
    thousands of cells costs time."""
    return (
        cells.state_cell(d.category, short=True, mono=mono),
        Text(d.name),
        cells.connection_cell(d, now, mono=mono),
        Text(d.installed_version or "?"),
        Text((d.offered.version or "?") if d.offered else "-"),
        cells.status_cell(d, mono=mono),
        Text(cells.progress_cell(d)),
        Text(cells.ago(d.last_seen, now)),
        Text(d.info.role),
        Text(d.info.route),
        Text(d.info.identity),
    )


def matches(d: DeviceView, text: str, category: Category | None) -> bool:
    if category is not None and d.category is not category:
        return False
    if not text:
        return True
    needle = text.lower()
    hay = (
        d.name,
        d.info.identity,
        d.info.role,
        d.info.route,
        d.installed_version or "",
        d.offered.version or "" if d.offered else "",
        d.last_status or "",
        d.category.value,
    )
    return any(needle in h.lower() for h in hay)


def sort_key(sort: str, d: DeviceView) -> tuple[Any, ...]:
    match sort:
        case "state":
            return (_STATE_ORDER[d.category], d.name)
        case "last seen":
            return (-(d.last_seen or 0.0), d.name)
        case "progress":
            return (-(d.progress if d.progress is not None else -1.0), d.name)
    return (d.name,)


class FleetScreen(StateScreen):
    """Every device at a glance."""

    BINDINGS = bindings(
        "fleet.open",
        "fleet.filter",
        "fleet.state",
        "fleet.sort",
        "fleet.clear",
        "fleet.prefetch",
    )

    def __init__(self) -> None:
        super().__init__()
        self.filter_text = ""
        self.state_filter: Category | None = None
        self.sort = "name"
        self._drawn_version = -1
        self._clock_second = 0
        self._shown: dict[str, tuple[str, ...]] = {}

    def compose(self) -> ComposeResult:
        yield ota_header("Fleet")
        filt = Input(placeholder="filter: name, identity, version, status…", id="fleet-filter")
        filt.cursor_blink = not self.ota.frozen
        yield filt
        yield Static("", id="fleet-bar", markup=False)
        table: DataTable[Any] = DataTable(id="fleet-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield ota_footer()

    def on_mount(self) -> None:
        table = self.table
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.query_one("#fleet-filter", Input).display = False
        self.rebuild()
        table.focus()

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#fleet-table", DataTable)

    # -- drawing -------------------------------------------------------------------------------

    def visible_devices(self) -> list[DeviceView]:
        shown = [
            d
            for d in self.state.devices.values()
            if matches(d, self.filter_text, self.state_filter)
        ]
        shown.sort(key=lambda d: sort_key(self.sort, d))
        return shown

    def rebuild(self) -> None:
        """Fill the table from scratch (after a filter or sort change)."""
        table = self.table
        selected = self.selected_name()
        table.clear()
        self._shown.clear()
        now = self.backend.now()
        for d in self.visible_devices():
            values = row_cells(d, now, self.app.no_color)
            table.add_row(*values, key=d.name)
            self._shown[d.name] = _plain(values)
        self._drawn_version = self.state.version
        if selected in self._shown:
            table.move_cursor(row=table.get_row_index(selected))
        self._update_bar()

    def refresh_state(self) -> None:
        """Update only the rows of devices that changed (and clocks)."""
        table = self.table
        now = self.backend.now()
        changed = {d.name for d in self.state.changed_since(self._drawn_version)}
        tick = int(now) != self._clock_second
        self._clock_second = int(now)
        resort = False
        for name, d in self.state.devices.items():
            wanted = matches(d, self.filter_text, self.state_filter)
            if name not in self._shown:
                if wanted:
                    values = row_cells(d, now, self.app.no_color)
                    table.add_row(*values, key=name)
                    self._shown[name] = _plain(values)
                    resort = True
                continue
            if not wanted:
                table.remove_row(name)
                del self._shown[name]
                continue
            if name not in changed and not (tick and self._clock_columns_move(d)):
                continue
            values = row_cells(d, now, self.app.no_color)
            plain = _plain(values)
            old = self._shown[name]
            for (key, _label), value, new, before in zip(COLUMNS, values, plain, old, strict=True):
                if new != before:
                    # widen only (Textual re-measures the whole column when a cell narrows:
                    # quadratic with a thousand rows)
                    wider = cell_len(new) > table.columns[ColumnKey(key)].content_width
                    table.update_cell(name, key, value, update_width=wider)
                    resort = resort or _SORT_COLUMN.get(self.sort) == key
            self._shown[name] = plain
        if resort:
            self._resort()
        self._drawn_version = self.state.version
        self._update_bar()

    def _clock_columns_move(self, d: DeviceView) -> bool:
        return d.last_seen is not None or d.retry_at is not None

    def _resort(self) -> None:
        """Sort the rows in place; the cursor stays on the device it was on."""
        selected = self.selected_name()
        order = {d.name: i for i, d in enumerate(self.visible_devices())}
        table = self.table
        table.sort("name", key=lambda name: order.get(_text(name), len(order)))
        if selected is not None and selected in self._shown:
            table.move_cursor(row=table.get_row_index(selected))

    def _update_bar(self) -> None:
        state = self.state_filter.value if self.state_filter else "all"
        text = f" {len(self._shown)}/{len(self.state.devices)} devices · state: {state}"
        text += f" · sort: {self.sort}"
        if self.filter_text:
            text += f" · filter: {self.filter_text}"
        self.query_one("#fleet-bar", Static).update(Text(text))

    def selected_name(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:  # no valid cursor (empty table)
            return None
        return None if key.value is None else str(key.value)

    # -- actions -------------------------------------------------------------------------------

    def action_open_device(self) -> None:
        name = self.selected_name()
        if name is not None:
            self.open_device(name)

    @on(DataTable.RowSelected, "#fleet-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.open_device(str(event.row_key.value))

    def open_device(self, name: str) -> None:
        from otatui.tui.screens.device import DeviceScreen

        self.app.push_screen(DeviceScreen(name))

    def action_filter(self) -> None:
        filt = self.query_one("#fleet-filter", Input)
        filt.display = True
        filt.focus()

    @on(Input.Changed, "#fleet-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.rebuild()

    @on(Input.Submitted, "#fleet-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            event.input.display = False
        self.table.focus()

    def action_clear_filter(self) -> None:
        filt = self.query_one("#fleet-filter", Input)
        changed = bool(self.filter_text) or self.state_filter is not None
        filt.value = ""
        filt.display = False
        self.filter_text = ""
        self.state_filter = None
        self.table.focus()
        if changed:
            self.rebuild()

    def set_state_filter(self, category: Category | None) -> None:
        self.state_filter = category
        self.rebuild()

    def action_cycle_state(self) -> None:
        i = STATE_FILTERS.index(self.state_filter)
        self.set_state_filter(STATE_FILTERS[(i + 1) % len(STATE_FILTERS)])

    def set_sort(self, sort: str) -> None:
        """Reorder the rows in place (no rebuild: the rows shown stay the same)."""
        self.sort = sort
        self.refresh_state()
        self._resort()
        self._update_bar()

    def action_cycle_sort(self) -> None:
        self.set_sort(SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)])

    def action_prefetch_all(self) -> None:
        self.ota.prefetch(None)

    def screen_commands(self) -> Iterable[ScreenCommand]:
        name = self.selected_name()
        if name is not None:
            yield ScreenCommand(f"Open {name}", "Show this device", _call(self.open_device, name))
        for category in STATE_FILTERS:
            label = category.value if category else "all states"
            yield ScreenCommand(
                f"Show {label}", "Filter the fleet by state", _call(self.set_state_filter, category)
            )
        for sort in SORTS:
            yield ScreenCommand(f"Sort by {sort}", "Order the fleet", _call(self.set_sort, sort))
        yield ScreenCommand(
            "Prefetch all",
            "Download every offered payload into the cache",
            self.action_prefetch_all,
        )


def _call(fn: Callable[[Any], None], arg: Any) -> Callable[[], None]:
    return lambda: fn(arg)


def _text(cell: object) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def _plain(values: tuple[Text, ...]) -> tuple[str, ...]:
    return tuple(v.plain for v in values)
