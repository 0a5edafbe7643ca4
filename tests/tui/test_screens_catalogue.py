"""The Manifests, Transfers and History screens and the export dialog: Pilot tests and snapshots.

Snapshots come from the frozen app (`otatui.tui.snapshot_app`) at 80×24 and 120×40; baselines
live in `__snapshots__/test_screens_catalogue/` (`pytest --snapshot-update`, then look at the
SVGs). They are compared on Python 3.11 only (other versions lay text out differently).
"""

from __future__ import annotations

import csv
import html
import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from otatui.config import load_config
from otatui.engine.events import ManifestReceived, ReportQueued, ReportsDelivered, TransferProgress
from otatui.engine.export import FIELDS
from otatui.tui.app import OtaApp
from otatui.tui.backend import BackendError, ContentEntry, FleetBackend
from otatui.tui.frozen import FrozenBackend
from otatui.tui.screens.catalogue_keys import CATALOGUE_KEYS
from otatui.tui.screens.device import DeviceScreen
from otatui.tui.screens.history import APPEND_BATCH, HistoryScreen
from otatui.tui.screens.manifest_cells import devices_line
from otatui.tui.screens.manifests import ManifestsScreen
from otatui.tui.screens.transfers import TransfersScreen
from otatui.tui.snapshot_app import snapshot_app
from otatui.tui.widgets.export_dialog import (
    ExportChoice,
    ExportDialog,
    ExportFormat,
    check_path,
    with_suffix,
)
from otatui.tui.widgets.row_table import RowTable

# -- the export dialog ----------------------------------------------------------------------------


def test_check_path(tmp_path: Path) -> None:
    assert check_path("  ", tmp_path).problem.startswith("enter")
    ok = check_path("out.csv", tmp_path)
    assert (ok.path, ok.problem, ok.exists) == (tmp_path / "out.csv", "", False)
    assert check_path(str(tmp_path), tmp_path).problem.endswith("is a folder: add a file name")
    assert "is a folder" in check_path("sub/", tmp_path).problem
    missing = check_path("nowhere/out.csv", tmp_path)
    assert missing.path is None and "does not exist" in missing.problem
    (tmp_path / "old.csv").write_text("x")
    assert check_path("old.csv", tmp_path).exists
    assert check_path("~/x.csv", tmp_path).path == Path(os.path.expanduser("~/x.csv"))
    assert check_path("a/../b.csv", tmp_path).path == tmp_path / "b.csv"


def test_with_suffix() -> None:
    assert with_suffix("h.csv", ExportFormat.JSON_LINES) == "h.jsonl"
    assert with_suffix("h.JSON", ExportFormat.CSV) == "h.csv"
    assert with_suffix("h.txt", ExportFormat.JSON_LINES) == "h.txt"
    assert with_suffix("history", ExportFormat.CSV) == "history"


class DialogHost(App[None]):
    """Opens the dialog and keeps what it returned."""

    def __init__(self, base: Path) -> None:
        super().__init__()
        self.base = base
        self.results: list[ExportChoice | None] = []

    def compose(self) -> ComposeResult:
        yield Static("host")

    def on_mount(self) -> None:
        self.push_screen(ExportDialog("history.csv", base=self.base), self.results.append)


async def test_dialog_returns_choice_and_format(tmp_path: Path) -> None:
    app = DialogHost(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("tab", "right", "enter")  # focus the formats, choose JSON lines
        await pilot.pause()
        assert app.screen.query_one("#export-path", Input).value == "history.jsonl"
        await pilot.press("ctrl+s")
        await pilot.pause()
    assert app.results == [ExportChoice(tmp_path / "history.jsonl", ExportFormat.JSON_LINES)]


async def test_dialog_refuses_bad_paths_and_confirms_replace(tmp_path: Path) -> None:
    (tmp_path / "history.csv").write_text("old")
    app = DialogHost(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        dialog = app.screen
        path_input = dialog.query_one("#export-path", Input)
        problem = dialog.query_one("#export-problem", Static)
        path_input.value = "missing/h.csv"
        await pilot.press("enter")
        assert "does not exist" in str(problem.render())
        assert app.results == []
        path_input.value = "history.csv"
        await pilot.press("enter")
        await pilot.pause()
        assert "press Enter again to replace it" in str(problem.render())
        assert app.results == []
        await pilot.press("enter")
        await pilot.pause()
    assert app.results == [ExportChoice(tmp_path / "history.csv", ExportFormat.CSV)]
    assert (tmp_path / "history.csv").read_text() == "old"  # the dialog writes nothing


async def test_dialog_cancel(tmp_path: Path) -> None:
    app = DialogHost(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
    assert app.results == [None]


# -- helpers --------------------------------------------------------------------------------------


async def settle(pilot: Pilot[Any]) -> None:
    """Let workers finish and the screen redraw."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def open_mode(pilot: Pilot[Any], key: str) -> None:
    await pilot.pause()
    await pilot.press(key)
    await settle(pilot)


def frozen_app() -> tuple[OtaApp, FrozenBackend]:
    app = snapshot_app()
    backend = app.backend
    assert isinstance(backend, FrozenBackend)
    return app, backend


def screen_text(app: OtaApp) -> str:
    """The picture's text (the SVG screenshot with its entities and non-breaking spaces)."""
    return html.unescape(app.export_screenshot()).replace("\xa0", " ")


def table_rows(screen: Any, selector: str) -> list[list[str]]:
    """The rows' cell texts of a `DataTable` or a `RowTable`."""
    table = screen.query_one(selector)
    if isinstance(table, RowTable):
        return [[c.plain for c in table.row_texts(name)] for name in table.rows]
    return [
        [str(getattr(c, "plain", c)) for c in table.get_row_at(i)] for i in range(table.row_count)
    ]


# -- bindings -------------------------------------------------------------------------------------


def test_every_binding_has_an_id_and_an_action() -> None:
    used: set[str] = set()
    for screen in (ManifestsScreen, TransfersScreen, HistoryScreen, ExportDialog):
        for b in screen.BINDINGS:
            assert isinstance(b, Binding) and b.id, f"{screen.__name__}: {b} has no id"
            assert hasattr(screen, f"action_{b.action}"), f"{screen.__name__}: {b.action}"
            used.add(b.id)
    assert {k.id for k in CATALOGUE_KEYS} <= used


# -- manifests ------------------------------------------------------------------------------------


async def test_manifests_lists_every_version_with_devices_and_cache() -> None:
    app, _ = frozen_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_mode(pilot, "2")
        screen = app.screen
        assert isinstance(screen, ManifestsScreen)
        groups = {g.version: g for g in screen.groups}
        assert set(groups) == {"1.4.0", "2.1.0", "3.0.2", "1.2.0", "4.3.0", "0.4.0"}
        pump = groups["2.1.0"]
        assert pump.offered_to == ("hvac-1", "pump-7", "pump-8")
        assert pump.installed_on == ("hvac-1",) and pump.failed_on == ("pump-8",)
        fw, assets = pump.items
        assert (fw.cache.value, fw.pinned, fw.size) == ("cached", True, 5_592_405)
        assert (assets.where, assets.pinned, assets.cache.value) == (
            "downloads.example.com",
            False,
            "not cached",
        )
        assert not groups["0.4.0"].valid
        rows = table_rows(screen, "#content-table")
        assert [r[0] for r in rows] == ["-", "PKG", "-", "-", "-"]
        assert rows[2][3] == "2.1.0"  # pump-fw-2.1.0.bin is used by 2.1.0
        assert "HTTP 500" in rows[4][4]


async def test_prefetch_from_manifests_calls_the_backend() -> None:
    app, backend = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_mode(pilot, "2")
        screen = app.screen
        assert isinstance(screen, ManifestsScreen)
        versions = [g.version for g in screen.groups]
        await pilot.press(*["down"] * versions.index("2.1.0"))
        assert screen.selected_version() == "2.1.0"
        await pilot.press("p")
        await settle(pilot)
        assert ("prefetch", "hvac-1,pump-7,pump-8") in backend.calls
        bar = str(screen.query_one("#manifests-bar", Static).render())
        assert "prefetch 2.1.0: 3 files ready (0 downloaded, 3 already cached)" in bar


async def test_a_new_offer_makes_the_old_version_past() -> None:
    app, backend = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_mode(pilot, "2")
        screen = app.screen
        assert isinstance(screen, ManifestsScreen)
        backend.publish(
            ManifestReceived(
                device="door-5",
                time=backend.now() + 5,
                version="4.4.0",
                name="Door lock",
                type="FILE",
                items=("door-4.4.0.bin",),
                source="mqtt",
            )
        )
        await pilot.pause(0.3)
        rows = table_rows(screen, "#manifests-table")
        assert rows[0][:2] == ["now", "4.4.0"]
        assert rows[-1][:2] == ["past", "4.3.0"]
        old = next(g for g in screen.groups if g.version == "4.3.0")
        assert old.offered_to == () and old.previously_offered == ("door-5",)


async def test_manifests_palette_commands_follow_the_selection() -> None:
    app, backend = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_mode(pilot, "2")
        screen = app.screen
        assert isinstance(screen, ManifestsScreen)
        first = screen.groups[0].version
        commands = {c.title: c for c in screen.screen_commands()}
        assert set(commands) == {
            f"Prefetch {first}",
            "Toggle the connector content list",
            "Reload the content list",
        }
        commands[f"Prefetch {first}"].callback()
        await settle(pilot)
        assert backend.calls[-1] == ("prefetch", ",".join(screen.groups[0].offered_to))


def test_long_device_lists_are_cut() -> None:
    line = devices_line("Offered to", [f"d{i:02d}" for i in range(30)])
    assert line.plain.startswith("Offered to      d00, d01,")
    assert line.plain.endswith("d23 … and 6 more")
    assert devices_line("Failed on", []).plain == "Failed on       -"


class RefusedContent(FrozenBackend):
    async def content_list(self) -> list[ContentEntry]:
        raise BackendError("content list: the connector refused the device token (HTTP 401)")


async def test_content_list_error_is_one_line() -> None:
    app = OtaApp(RefusedContent(), frozen=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_mode(pilot, "2")
        await pilot.press("c")
        await settle(pilot)
        status = str(app.screen.query_one("#content-status", Static).render())
        assert status == (
            "!! cannot read the content list: content list: the connector refused the device "
            "token (HTTP 401)"
        )


# -- transfers ------------------------------------------------------------------------------------


async def test_transfers_show_progress_and_update_in_place() -> None:
    app, backend = frozen_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_mode(pilot, "3")
        screen = app.screen
        assert isinstance(screen, TransfersScreen)
        rows = table_rows(screen, "#transfers-table")
        assert [r[1] for r in rows] == ["pump-7", "sensor-2", "sensor-1", "pump-8"]
        assert rows[0][0] == ">> active" and "60%" in rows[0][3] and rows[0][5] == "9s"
        assert rows[1][7] == "push"
        backend.publish(
            TransferProgress(
                device="pump-7",
                time=backend.now(),
                file="pump-fw-2.1.0.bin",
                index=0,
                count=2,
                done=5_000_000,
                total=5_592_405,
                rate=262_144.0,
            )
        )
        await pilot.pause(0.3)
        rows = table_rows(screen, "#transfers-table")
        assert "89%" in rows[0][3] and rows[0][5] == "2s"
        await pilot.press("f")
        await pilot.pause()
        assert len(table_rows(screen, "#transfers-table")) == 2
        await pilot.press("down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, DeviceScreen) and app.screen.device_name == "sensor-2"


async def test_transfer_cells_from_a_manifest_are_never_markup_and_columns_widen() -> None:
    """A file name like ``[bold]x[/]`` comes from a manifest: drawn as it is; a longer value
    arriving in place widens its column instead of being cut."""
    from otatui.engine.events import TransferFinished

    app, backend = frozen_app()
    async with app.run_test(size=(160, 40)) as pilot:
        await open_mode(pilot, "3")
        screen = app.screen
        assert isinstance(screen, TransfersScreen)
        now = backend.now()
        progress = dict(device="door-5", time=now, file="[bold]x[/]", index=0, count=1)
        backend.publish(TransferProgress(**progress, done=1, total=9, rate=1.0))  # type: ignore[arg-type]
        await pilot.pause(0.3)
        table = screen.query_one("#transfers-table", DataTable)
        eta_before = table.columns["eta"].content_width  # type: ignore[index]
        backend.publish(TransferProgress(**progress, done=1, total=10**10, rate=1.0))  # type: ignore[arg-type]
        await pilot.pause(0.3)
        row = next(r for r in table_rows(screen, "#transfers-table") if r[1] == "door-5")
        assert row[2] == "[bold]x[/]" and row[5] == "2777777h46m"
        assert table.columns["eta"].content_width >= len("2777777h46m") > eta_before  # type: ignore[index]
        shown = screen_text(app)
        assert "[bold]x[/]" in shown and "2777777h46m" in shown
        backend.publish(
            TransferFinished(
                device="door-5", time=now, file="[bold]x[/]", ok=False, message="[red]boom[/red]"
            )
        )
        await pilot.pause(0.3)
        assert "[red]boom[/red]" in screen_text(app)


async def test_history_messages_and_screen_notices_are_never_markup() -> None:
    app, backend = frozen_app()
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        await open_mode(pilot, "4")
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        backend.publish(
            ReportQueued(
                device="door-5",
                time=backend.now(),
                outbox_id=77,
                version="[i]4[/i]",
                status="DOWNLOAD_STEP",
                message="[bold]x[/]",
            )
        )
        await pilot.pause(0.3)
        table = screen.query_one("#history-table", RowTable)
        cells = table.row_texts(table.rows[-1])
        assert all(isinstance(c, Text) for c in cells)  # a str cell is read as markup
        assert table_rows(screen, "#history-table")[-1][7] == "[bold]x[/]"
        lines = screen_text(app).splitlines()
        assert any(
            "door-5" in line and "[i]4[/i]" in line and "[bold]x[/]" in line for line in lines
        )
        screen.notify("export failed: [bold]disk[/bold] full", severity="error")
        await pilot.pause()
        assert "[bold]disk[/bold]" in screen_text(app)


# -- history --------------------------------------------------------------------------------------


async def test_history_filter() -> None:
    app, _ = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_mode(pilot, "4")
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        total = len(app.state.history)
        assert screen.table.row_count == total
        await pilot.press("slash", *"pump-8", "enter")
        await pilot.pause()
        rows = table_rows(screen, "#history-table")
        assert rows and all(r[1] == "pump-8" for r in rows)
        await pilot.press("x")
        await pilot.pause()
        rows = table_rows(screen, "#history-table")
        assert [(r[1], r[4]) for r in rows] == [("pump-8", "!! INSTALL_ERROR")]
        assert screen.query_one("#history-filter", Input).value == "pump-8 is:error"
        await pilot.press("escape")
        await pilot.pause()
        assert screen.table.row_count == total
        await pilot.press("u")
        await pilot.pause()
        rows = table_rows(screen, "#history-table")
        assert {r[1] for r in rows} == {"sensor-1", "sensor-2"}
        assert {r[5] for r in rows} == {"unsent"}
        await pilot.press("escape", "slash", *"relay")  # no Enter: applies once typing pauses
        await pilot.pause(0.4)
        rows = table_rows(screen, "#history-table")
        assert rows and {r[1] for r in rows} == {"relay-6"}


async def test_history_appends_and_marks_sent_without_rebuilding() -> None:
    app, backend = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_mode(pilot, "4")
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        before = screen.table.row_count
        first_key = screen.table.rows[0]
        backend.publish(
            ReportQueued(
                device="door-5",
                time=backend.now(),
                outbox_id=9001,
                version="4.3.0",
                status="TEST_SUCCESS",
                message="ready",
                source="mqtt",
            )
        )
        await pilot.pause(0.3)
        assert screen.table.row_count == before + 1
        assert screen.table.rows[0] == first_key
        last = table_rows(screen, "#history-table")[-1]
        assert (last[1], last[4], last[5]) == ("door-5", "TEST_SUCCESS", "unsent")
        assert screen.table.cursor_row == before  # follows the newest entry
        backend.publish(ReportsDelivered(device="door-5", time=backend.now(), outbox_ids=(9001,)))
        await pilot.pause(0.3)
        assert table_rows(screen, "#history-table")[-1][5] == "sent"
        assert screen.table.row_count == before + 1


async def test_history_flood_is_appended_in_batches() -> None:
    app, backend = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_mode(pilot, "4")
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        before = screen.table.row_count
        for i in range(APPEND_BATCH + 100):
            backend.publish(
                ReportQueued(
                    device="pump-7",
                    time=backend.now() + i,
                    outbox_id=20_000 + i,
                    version="2.1.0",
                    status="DOWNLOAD_STEP",
                    message=f"step {i}",
                    source="mqtt",
                )
            )
        app.drain()
        assert screen.table.row_count == before + APPEND_BATCH  # the rest follows shortly
        await pilot.pause(0.3)
        assert screen.table.row_count == before + APPEND_BATCH + 100
        assert table_rows(screen, "#history-table")[-1][7] == f"step {APPEND_BATCH + 99}"
        assert screen.table.cursor_row == screen.table.row_count - 1


async def test_export_history_from_the_frozen_app(tmp_path: Path) -> None:
    app, backend = frozen_app()
    target = tmp_path / "history.csv"
    async with app.run_test(size=(80, 24)) as pilot:
        await open_mode(pilot, "4")
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, ExportDialog)
        app.screen.query_one("#export-path", Input).value = str(target)
        await pilot.press("enter")
        await settle(pilot)
        bar = str(app.screen.query_one("#history-bar", Static).render())
        assert f"exported {len(backend.history.rows)} rows to {target} (CSV)" in bar
    with target.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(FIELDS)
    assert len(rows) == 1 + len(backend.history.rows)
    assert {r[2] for r in rows[1:]} >= {"pump-8", "sensor-1", "relay-6"}


TOKEN = "tok-SECRET-7f3a9c"


class StoreOnlyBackend(FleetBackend):
    """The real backend with its store open but no session running (nothing to connect to)."""

    async def start(self) -> None:
        await self.fleet.__aenter__()

    async def stop(self) -> None:
        await self.fleet.aclose()


def token_config(tmp_path: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        "\n".join(
            [
                'site = "token test"',
                "[connector]",
                'url = "http://127.0.0.1:9"',
                "insecure = true",
                "[paths]",
                f'data_dir = "{tmp_path / "data"}"',
                f'cache_dir = "{tmp_path / "cache"}"',
                "[[devices]]",
                'name = "pump-1"',
                'identity = "p0001"',
                f'token = "{TOKEN}"',
                'protocol = "http"',
                'role = "monitor"',
            ]
        )
        + "\n"
    )
    return path


async def test_export_history_as_json_lines_hides_tokens(tmp_path: Path) -> None:
    config = load_config(token_config(tmp_path))
    backend = StoreOnlyBackend(config)
    app = OtaApp(backend, frozen=True)
    target = tmp_path / "out" / "history.jsonl"
    target.parent.mkdir()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        store = backend.fleet.store
        assert store is not None
        store.add_history(
            device="pump-1",
            direction="local",
            resource="error",
            value=f"the connector said: bad token {TOKEN}",
            source="otatui",
            note=f"token {TOKEN} refused",
        )
        store.add_history(
            device="pump-1",
            direction="out",
            resource="otau_in",
            value='{"version":"1.0","status":"INSTALLED_VERSION","message":""}',
            source="http",
            version="1.0",
            status="INSTALLED_VERSION",
            delivered_at=1.0,
        )
        await open_mode(pilot, "4")
        await pilot.press("e")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ExportDialog)
        await pilot.press("tab", "right", "enter")  # JSON lines
        dialog.query_one("#export-path", Input).value = str(target)
        await pilot.press("ctrl+s")
        await settle(pilot)
    text = target.read_text(encoding="utf-8")
    assert TOKEN not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert [r["resource"] for r in lines] == ["error", "otau_in"]
    assert lines[0]["value"] == "the connector said: bad token ***"
    assert lines[0]["note"] == "token *** refused"
    assert lines[1]["cloud"] == "sent"


# -- snapshots ------------------------------------------------------------------------------------

on_311 = pytest.mark.skipif(
    sys.version_info[:2] != (3, 11),
    reason="snapshot baselines are recorded with Python 3.11; other versions lay text out "
    "differently",
)


@dataclass(frozen=True, slots=True)
class View:
    name: str
    keys: tuple[str, ...]

    async def prepare(self, pilot: Pilot[Any]) -> None:
        await pilot.pause()
        for key in self.keys:
            await pilot.press(key)
            await settle(pilot)


VIEWS = (
    View("manifests", ("2",)),
    View("manifests_failed", ("2", "down", "down", "down")),
    View("manifests_content", ("2", "c")),
    View("transfers", ("3",)),
    View("history", ("4",)),
    View("history_errors", ("4", "x")),
    View("history_filter", ("4", "slash", *"sensor", "enter")),
    View("export_dialog", ("4", "e")),
)


@on_311
@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v.name)
def test_snapshot(snap_compare: Callable[..., bool], view: View, size: tuple[int, int]) -> None:
    run_before: Callable[[Pilot[Any]], Awaitable[None]] = view.prepare
    assert snap_compare(snapshot_app(), terminal_size=size, run_before=run_before)


@on_311
@pytest.mark.parametrize("view", [VIEWS[1], VIEWS[3], VIEWS[5]], ids=lambda v: v.name)
def test_snapshot_no_color(
    snap_compare: Callable[..., bool], view: View, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--no-color: states, failures, cache and unsent rows still read through text markers."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert snap_compare(
        snapshot_app(no_color=True), terminal_size=(80, 24), run_before=view.prepare
    )
