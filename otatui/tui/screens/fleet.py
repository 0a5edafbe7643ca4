"""The Fleet screen: one table row per device, sorted and filtered, drawn only where visible.

The table is a `RowTable` (Textual's Line API): it keeps only the order of the device names and
draws the rows on screen straight from the `FleetState` through `row_cells`, so a key press costs
the thirty rows on screen, not the thousand in the fleet. After each batch of events the rows of
devices changed since the last draw are repainted if they are on screen; the order is recomputed
(filter and sort over the model, no drawing) only when a change can move or hide a row.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import Input, Static

from otatui.tui import cells
from otatui.tui.keys import bindings
from otatui.tui.records import Category, DeviceView
from otatui.tui.screens.base import ScreenCommand, StateScreen
from otatui.tui.widgets.chrome import ota_footer, ota_header
from otatui.tui.widgets.filter_input import FilterInput
from otatui.tui.widgets.row_table import Column, RowTable

COLUMNS: tuple[Column, ...] = (
    Column("state", "State", 13),
    Column("name", "Name", 8, 32),
    Column("connection", "Connection", 10, 12),
    Column("installed", "Installed", 9, 20),
    Column("offered", "Offered", 9, 20),
    Column("status", "Last status", 19, 28),
    Column("progress", "Progress", cells.BAR_WIDTH + 5),
    Column("seen", "Last seen", 9),
    Column("role", "Role", 7, 10),
    Column("route", "Link", 11, 14),
    Column("identity", "Identity", 12, 40),
)
"""Widths fit the usual values (``ok up to date``, ``INSTALLED_VERSION *``, ``http+serial``);
names, versions, statuses and identities widen a column up to its maximum, longer ones end with
an ellipsis (the device screen shows them whole)."""

STATE_FILTERS: tuple[Category | None, ...] = (None, *Category)
SORTS: tuple[str, ...] = ("name", "state", "last seen", "progress")
_STATE_ORDER = {c: i for i, c in enumerate(Category)}
_MOVING_SORTS = frozenset({"state", "last seen", "progress"})
"""Orders in which a device's change can move its row (not the name order)."""


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
        self._bar = ""

    def compose(self) -> ComposeResult:
        yield ota_header("Fleet")
        filt = FilterInput(
            placeholder="filter: name, identity, version, status…", id="fleet-filter"
        )
        filt.cursor_blink = not self.ota.frozen
        yield filt
        yield Static("", id="fleet-bar", markup=False)
        yield RowTable(COLUMNS, self._row_cells, self._row_revision, id="fleet-table")
        yield ota_footer()

    def on_mount(self) -> None:
        filt = self.query_one("#fleet-filter", Input)
        filt.display = False
        # a watch runs as the key changes the value, so the rows follow in the same frame
        # (an Input.Changed message would arrive after the box repainted: one frame later)
        self.watch(filt, "value", self._filter_changed, init=False)
        self._widen(self.state.devices.values())
        self.rebuild()
        self.table.focus()

    @property
    def table(self) -> RowTable:
        return self.query_one("#fleet-table", RowTable)

    # -- drawing -------------------------------------------------------------------------------

    def _row_cells(self, name: str) -> tuple[Text, ...]:
        return row_cells(self.state.devices[name], self.backend.now(), self.app.no_color)

    def _row_revision(self, name: str) -> Hashable:
        """What a drawn row depends on: the device's revision, and the second when it shows a
        clock (last seen, retry countdown)."""
        d = self.state.devices[name]
        clock = int(self.backend.now()) if _has_clock(d) else 0
        return (d.revision, clock, self.app.no_color)

    def visible_devices(self) -> list[DeviceView]:
        shown = [
            d
            for d in self.state.devices.values()
            if matches(d, self.filter_text, self.state_filter)
        ]
        shown.sort(key=lambda d: sort_key(self.sort, d))
        return shown

    def rebuild(self) -> None:
        """Filter and sort the model again; the cursor stays on its device if still shown."""
        self.table.set_rows([d.name for d in self.visible_devices()])
        self._drawn_version = self.state.version
        self._update_bar()

    def refresh_state(self) -> None:
        """Repaint the rows of devices that changed (and clocks); reorder when a change can move
        a row or take it in or out of the filter."""
        table = self.table
        now = self.backend.now()
        changed = self.state.changed_since(self._drawn_version)
        tick = int(now) != self._clock_second
        self._clock_second = int(now)
        self._widen(changed)
        reorder = False
        for d in changed:
            wanted = matches(d, self.filter_text, self.state_filter)
            if wanted != (d.name in table) or (wanted and self.sort in _MOVING_SORTS):
                reorder = True
                break
        if reorder:
            self.rebuild()
            return
        self._drawn_version = self.state.version
        if tick:
            table.refresh()
        else:
            table.refresh_rows(d.name for d in changed)
        self._update_bar()

    def _widen(self, devices: Iterable[DeviceView]) -> None:
        """Columns grow to hold longer names, versions and statuses (never shrink, never
        measure what is drawn: the widths come from the model's strings)."""
        widest: dict[str, int] = {}
        for d in devices:
            for key, value in _variable_values(d):
                n = cell_len(value)
                if n > widest.get(key, 0):
                    widest[key] = n
        table = self.table
        for key, n in widest.items():
            table.widen(key, n)

    def _update_bar(self) -> None:
        state = self.state_filter.value if self.state_filter else "all"
        text = f" {self.table.row_count}/{len(self.state.devices)} devices · state: {state}"
        text += f" · sort: {self.sort}"
        if self.filter_text:
            text += f" · filter: {self.filter_text}"
        if text != self._bar:
            self._bar = text
            self.query_one("#fleet-bar", Static).update(Text(text), layout=False)  # one line

    def selected_name(self) -> str | None:
        return self.table.cursor_name

    # -- actions -------------------------------------------------------------------------------

    def action_open_device(self) -> None:
        name = self.selected_name()
        if name is not None:
            self.open_device(name)

    @on(RowTable.Selected, "#fleet-table")
    def _row_selected(self, event: RowTable.Selected) -> None:
        self.open_device(event.name)

    def open_device(self, name: str) -> None:
        from otatui.tui.screens.device import DeviceScreen

        self.app.push_screen(DeviceScreen(name))

    def action_filter(self) -> None:
        filt = self.query_one("#fleet-filter", Input)
        filt.display = True
        filt.focus()

    def _filter_changed(self, value: str) -> None:
        if value.strip() != self.filter_text:
            self.filter_text = value.strip()
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
        """Reorder the rows (the cursor stays on its device)."""
        self.sort = sort
        self.rebuild()

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


def _has_clock(d: DeviceView) -> bool:
    """Its row shows a time that moves by itself (last seen, a retry countdown)."""
    return d.last_seen is not None or d.retry_at is not None


def _variable_values(d: DeviceView) -> Iterable[tuple[str, str]]:
    """The plain texts of the columns whose width follows the values (`COLUMNS`)."""
    yield "name", d.name
    yield "installed", d.installed_version or "?"
    if d.offered is not None:
        yield "offered", d.offered.version or "?"
    if d.last_status is not None:
        yield "status", d.last_status + (cells.NOT_SENT_MARK if d.last_status_sent is False else "")
    yield "role", d.info.role
    yield "route", d.info.route
    yield "identity", d.info.identity
