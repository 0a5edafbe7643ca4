"""The Manifests screen: every manifest offered to any device, current and past, by version.

The table lists one version per row (offered now first); the panel below shows the highlighted
version's payload items (connector content or external host, size, sha256 pin or UNPINNED,
cache state) and which devices it is offered to, was offered to before, is installed on and
failed on. `p` prefetches its files for the devices it is offered to (through the backend);
`c` switches to the connector's content list (``GET /provision/download``, ``package_*`` ids
marked PKG), read through the backend in a worker, errors shown as one line.

The rows are recomputed only when the manifests, the cache (a finished transfer, a prefetch)
or the content list changed, never for mere progress.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import ContentSwitcher, DataTable, Static

from otatui.tui.backend import BackendError, ContentEntry
from otatui.tui.catalogue import (
    ContentRow,
    ManifestGroup,
    content_rows,
    content_sizes,
    manifest_groups,
)
from otatui.tui.screens.base import ScreenCommand, StateScreen
from otatui.tui.screens.catalogue_keys import catalogue_bindings
from otatui.tui.screens.manifest_cells import (
    CONTENT_COLUMNS,
    MANIFEST_COLUMNS,
    content_cells,
    group_cells,
    group_detail,
    plural,
    prefetch_summary,
)
from otatui.tui.widgets.chrome import ota_footer, ota_header


class ManifestsScreen(StateScreen):
    """Every manifest seen, by version; the connector's content list on `c`."""

    BINDINGS = catalogue_bindings("manifests.prefetch", "manifests.content", "manifests.reload")

    def __init__(self) -> None:
        super().__init__()
        self.groups: list[ManifestGroup] = []
        self.content: list[ContentRow] = []
        self._entries: list[ContentEntry] = []
        self.content_error = ""
        self.content_loaded = False
        self.prefetching = False
        self._cache_epoch = 0
        self._drawn_version = -1
        self._drawn_key: object = None
        self._message = ""

    def compose(self) -> ComposeResult:
        yield ota_header("Manifests")
        yield Static("", id="manifests-bar", markup=False)
        with ContentSwitcher(initial="manifests-view", id="manifests-switcher"):
            with Vertical(id="manifests-view"):
                table: DataTable[Any] = DataTable(id="manifests-table", cursor_type="row")
                yield table
                with VerticalScroll(id="manifests-detail"):
                    yield Static("", id="manifests-detail-text", markup=False)
            with Vertical(id="content-view"):
                yield Static("", id="content-status", markup=False)
                content: DataTable[Any] = DataTable(
                    id="content-table", cursor_type="row", zebra_stripes=True
                )
                yield content
        yield ota_footer()

    DEFAULT_CSS = """
    ManifestsScreen #manifests-bar { height: 1; padding: 0 1; }
    ManifestsScreen #manifests-switcher { height: 1fr; }
    ManifestsScreen #manifests-table { height: auto; max-height: 40%; }
    ManifestsScreen #manifests-detail {
        height: 1fr; border-top: solid $panel-lighten-2; padding: 0 1;
    }
    ManifestsScreen #content-status { height: 1; padding: 0 1; }
    ManifestsScreen #content-table { height: 1fr; }
    """

    def on_mount(self) -> None:
        table = self.query_one("#manifests-table", DataTable)
        for key, label in MANIFEST_COLUMNS:
            table.add_column(label, key=key)
        content = self.query_one("#content-table", DataTable)
        for key, label in CONTENT_COLUMNS:
            content.add_column(label, key=key)
        self.refresh_state()
        table.focus()
        self.load_content()

    # -- drawing -------------------------------------------------------------------------------

    def _clock(self, when: float) -> str:
        return time.strftime("%m-%d %H:%M", self.backend.local_time(when))

    def _redraw_key(self) -> object:
        views = tuple(
            (
                v.version,
                v.manifest.name,
                v.last_seen,
                v.manifest.valid,
                tuple(sorted(v.offered_to)),
                tuple(sorted(v.installed_on)),
                tuple(sorted(v.failed_on)),
                tuple(sorted(v.seen_by)),
            )
            for v in self.state.manifest_views()
        )
        finished = self.state.finished
        last = id(finished[-1]) if finished else None
        return (views, last, len(finished), self._cache_epoch, len(self.content))

    def refresh_state(self) -> None:
        if self.state.version == self._drawn_version:
            return
        self._drawn_version = self.state.version
        key = self._redraw_key()
        if key == self._drawn_key:
            return
        self._drawn_key = key
        self.groups = manifest_groups(
            self.state.manifests.values(),
            self.backend.cached,
            content_sizes(self.content),
            each=True,
        )
        self._fill_groups()

    def _fill_groups(self) -> None:
        table = self.query_one("#manifests-table", DataTable)
        selected = self.selected_key()
        table.clear()
        for g in self.groups:
            table.add_row(*group_cells(g, self.app.no_color), key=g.key)
        keys = [g.key for g in self.groups]
        if selected in keys:
            table.move_cursor(row=keys.index(selected))
        self._show_detail()
        self._update_bar()

    def _show_detail(self) -> None:
        g = self.selected_group()
        text = (
            group_detail(g, self._clock, self.app.no_color)
            if g is not None
            else Text("No manifest has been offered to any device yet.")
        )
        self.query_one("#manifests-detail-text", Static).update(text)

    def _update_bar(self) -> None:
        current = sum(1 for g in self.groups if g.current)
        text = self._message or (
            f"{plural(len(self.groups), 'manifest')}, {current} offered now"
            " · Files ! = some unpinned"
        )
        self.query_one("#manifests-bar", Static).update(Text(text))

    def selected_key(self) -> str | None:
        g = self.selected_group()
        return g.key if g is not None else None

    def selected_version(self) -> str | None:
        g = self.selected_group()
        return g.version if g is not None else None

    def selected_group(self) -> ManifestGroup | None:
        table = self.query_one("#manifests-table", DataTable)
        if table.row_count == 0:
            return None
        row = min(max(table.cursor_row, 0), table.row_count - 1)
        return self.groups[row] if row < len(self.groups) else None

    @on(DataTable.RowHighlighted, "#manifests-table")
    def _highlighted(self) -> None:
        self._show_detail()

    # -- connector content ---------------------------------------------------------------------

    @work(exclusive=True, group="content")
    async def load_content(self) -> None:
        self._content_status("loading the connector's content list…")
        try:
            entries = await self.backend.content_list()
        except BackendError as exc:
            self.content_error = str(exc)
            self._content_status(f"!! cannot read the content list: {exc}")
            return
        self.content_error = ""
        self.content_loaded = True
        self._entries = entries
        self._fill_content()
        self._drawn_version = -1
        self.refresh_state()  # sizes from the list

    def _fill_content(self) -> None:
        self.content = content_rows(self._entries, self.groups)
        table = self.query_one("#content-table", DataTable)
        table.clear()
        for row in self.content:
            table.add_row(*content_cells(row, self._clock, self.app.no_color), key=row.content_id)
        packages = sum(1 for r in self.content if r.package)
        errors = sum(1 for r in self.content if r.error)
        line = f"connector content: {plural(len(self.content), 'item')}"
        line += f", {plural(packages, 'package')} (PKG)"
        if errors:
            line += f", {errors} without info (!!)"
        self._content_status(line)

    def _content_status(self, line: str) -> None:
        self.query_one("#content-status", Static).update(Text(line))

    def action_toggle_content(self) -> None:
        switcher = self.query_one(ContentSwitcher)
        showing = switcher.current == "content-view"
        switcher.current = "manifests-view" if showing else "content-view"
        target = "#manifests-table" if showing else "#content-table"
        self.query_one(target, DataTable).focus()

    def action_reload_content(self) -> None:
        self.load_content()

    # -- prefetch ------------------------------------------------------------------------------

    def action_prefetch(self) -> None:
        g = self.selected_group()
        if g is None:
            self.notify("no manifest to prefetch", severity="warning")
            return
        if not g.current:
            self.notify(
                f"{g.version} is not offered to any device now: nothing to prefetch",
                severity="warning",
            )
            return
        if self.prefetching:
            self.notify("a prefetch is already running", severity="warning")
            return
        self.prefetch(g.version, g.offered_to)

    @work(exclusive=True, group="prefetch")
    async def prefetch(self, version: str, devices: tuple[str, ...]) -> None:
        self.prefetching = True
        self._set_message(f"prefetching {version} for {', '.join(devices)}…")
        try:
            results = await self.backend.prefetch(list(devices))
        except BackendError as exc:
            self._set_message(f"!! prefetch {version}: {exc}")
            return
        finally:
            self.prefetching = False
        self._cache_epoch += 1
        self._set_message(prefetch_summary(version, results))
        self._drawn_version = -1
        self.refresh_state()

    def _set_message(self, line: str) -> None:
        self._message = line
        self._update_bar()

    def screen_commands(self) -> Iterable[ScreenCommand]:
        g = self.selected_group()
        if g is not None and g.current:
            yield ScreenCommand(
                f"Prefetch {g.version}",
                "Download its files into the cache for the devices it is offered to",
                self.action_prefetch,
            )
        yield ScreenCommand(
            "Toggle the connector content list",
            "GET /provision/download",
            self.action_toggle_content,
        )
        yield ScreenCommand("Reload the content list", "Read it again", self.action_reload_content)
