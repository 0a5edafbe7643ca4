"""Pilot tests of the main interactions, on the frozen app (keyboard only, 80×24)."""

from __future__ import annotations

import html
import time
from typing import Any

from textual.widgets import Input

from otatui.engine.events import (
    ConnectionChanged,
    InstallOutput,
    ReportQueued,
    TransferProgress,
)
from otatui.tui.app import OtaApp
from otatui.tui.frozen import DEVICES, FrozenBackend
from otatui.tui.records import DeviceInfo
from otatui.tui.screens.confirm import ConfirmScreen
from otatui.tui.screens.device import DeviceScreen
from otatui.tui.screens.fleet import FleetScreen
from otatui.tui.screens.help import HelpScreen
from otatui.tui.widgets.row_table import RowTable

SIZE = (80, 24)


def make_app(**kw: Any) -> tuple[OtaApp, FrozenBackend]:
    backend = FrozenBackend()
    return OtaApp(backend, frozen=True, **kw), backend


def table(app: OtaApp) -> RowTable:
    return app.screen.query_one("#fleet-table", RowTable)


def row_names(app: OtaApp) -> list[str]:
    return list(table(app).rows)


def screen_text(app: OtaApp) -> str:
    """The picture's text (the SVG screenshot with its entities and non-breaking spaces)."""
    return html.unescape(app.export_screenshot()).replace("\xa0", " ")


def cell(app: OtaApp, row: str, column: str) -> str:
    assert row in table(app), f"{row} is not shown"
    return table(app).get_cell(row, column).plain


async def test_starts_on_the_fleet_with_every_device() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, FleetScreen)
        assert sorted(row_names(app)) == sorted(d.name for d in DEVICES)
        assert cell(app, "meter-3", "state") == "-- offline"
        assert cell(app, "meter-3", "connection") == "retry 42s"
        assert cell(app, "pump-8", "state") == "!! attention"
        assert cell(app, "sensor-1", "status") == "DOWNLOAD_SUCCESS *"
        assert cell(app, "pump-7", "progress").endswith("30%")


async def test_navigate_between_screens_with_number_keys() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        for key, mode in (("2", "manifests"), ("3", "transfers"), ("4", "history")):
            await pilot.press(key)
            await pilot.pause()
            assert app.current_mode == mode
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("1")
        await pilot.pause()
        assert isinstance(app.screen, FleetScreen)


async def test_filter_by_text_and_by_state() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("slash", "p", "u", "m", "p")
        await pilot.pause()
        assert sorted(row_names(app)) == ["pump-7", "pump-8"]
        await pilot.press("enter")  # back to the table, filter kept
        await pilot.pause()
        assert isinstance(app.focused, RowTable)
        await pilot.press("escape")  # clears
        await pilot.pause()
        assert len(row_names(app)) == len(DEVICES)
        await pilot.press("f")  # needs attention
        await pilot.pause()
        assert sorted(row_names(app)) == ["light-9", "pump-8", "relay-6", "sensor-1"]
        await pilot.press("f")  # updating
        await pilot.pause()
        assert sorted(row_names(app)) == ["door-5", "pump-7", "sensor-2", "valve-2"]
        await pilot.press("f", "f")  # up to date, then offline
        await pilot.pause()
        assert row_names(app) == ["meter-3"]


async def test_sort_by_state_puts_attention_first() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("s")
        await pilot.pause()
        names = row_names(app)
        assert names[:4] == ["light-9", "pump-8", "relay-6", "sensor-1"]
        assert names[-1] == "meter-3"


async def test_open_a_device_and_go_back() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press(
            "down", "down", "down", "down", "down"
        )  # door-5 gw hvac light meter pump-7
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DeviceScreen) and screen.device_name == "pump-7"
        shown = str(screen.query_one("#device-transfer").render())
        assert "3.2 MiB of 5.3 MiB" in shown and "ETA 9s" in shown
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, FleetScreen)


async def open_device(app: OtaApp, pilot: Any, name: str) -> DeviceScreen:
    await pilot.pause()
    fleet = app.screen
    assert isinstance(fleet, FleetScreen)
    fleet.open_device(name)
    await pilot.pause()
    assert isinstance(app.screen, DeviceScreen)
    return app.screen


async def test_cancel_asks_first_and_no_does_nothing() -> None:
    app, backend = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_device(app, pilot, "pump-7")
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, DeviceScreen)
        assert backend.calls == []
        await pilot.press("c")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause(0.3)  # a drain tick
        assert backend.calls == [("cancel", "pump-7")]
        d = app.state.devices["pump-7"]
        assert d.last_status == "INSTALL_ABORTED" and d.phase == "idle"
        assert not d.active_transfers
        assert "stopped" in str(app.screen.query_one("#device-transfer").render())


async def test_apply_on_a_waiting_bridge() -> None:
    app, backend = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_device(app, pilot, "sensor-1")
        assert "waiting for you to apply" in str(
            app.screen.query_one("#device-connection").render()
        )
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await pilot.pause(0.3)
        assert backend.calls == [("apply", "sensor-1")]
        d = app.state.devices["sensor-1"]
        assert d.awaiting_apply is None and d.link_state == "transferring"


async def test_actions_are_offered_only_when_they_can_do_something() -> None:
    app, backend = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_device(app, pilot, "pump-7")  # downloading, nothing waits
        await pilot.press("a", "r")
        await pilot.pause()
        assert isinstance(app.screen, DeviceScreen)
        assert backend.calls == []
        assert screen.check_action("cancel", ()) and not screen.check_action("apply", ())
        await pilot.press("escape")
        await pilot.pause()
        monitor = await open_device(app, pilot, "tank-4")
        assert not any(monitor.check_action(a, ()) for a in ("apply", "cancel", "retry"))
        assert [c.title for c in monitor.screen_commands()] == ["Back to the fleet"]


async def test_retry_and_prefetch_from_the_device_screen() -> None:
    app, backend = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_device(app, pilot, "pump-8")
        await pilot.press("r")
        await pilot.pause(0.3)
        assert ("retry", "pump-8") in backend.calls
        assert app.state.devices["pump-8"].last_status == "INIT"
        await pilot.press("p")
        await pilot.pause(0.3)
        assert ("prefetch", "pump-8") in backend.calls


async def test_keys_remapped_from_the_config() -> None:
    app, _ = make_app(keys={"fleet.filter": "ctrl+f", "app.help": "h", "nonsense.id": "x"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.key_problems == ["nonsense.id"]
        await pilot.press("slash")
        await pilot.pause()
        assert not app.screen.query_one("#fleet-filter", Input).display
        await pilot.press("ctrl+f")
        await pilot.pause()
        assert isinstance(app.focused, Input)
        await pilot.press("escape")
        await pilot.pause()
        app.screen.query_one("#fleet-table").focus()
        await pilot.press("h")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        assert "ctrl+f" in str(app.screen.query_one("#help-bindings").render())


async def test_palette_commands_follow_the_screen() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        fleet = app.screen
        assert isinstance(fleet, FleetScreen)
        titles = [c.title for c in fleet.screen_commands()]
        assert "Show needs attention" in titles and "Sort by state" in titles
        device = await open_device(app, pilot, "sensor-1")
        titles = [c.title for c in device.screen_commands()]
        assert "Apply on sensor-1" in titles and "Cancel sensor-1" in titles
        assert "Retry sensor-1" not in titles  # nothing failed
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"prefetch sensor")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert ("prefetch", "sensor-1") in app.backend.calls  # type: ignore[attr-defined]


async def test_live_events_update_only_the_changed_cells() -> None:
    app, backend = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        backend.publish(
            TransferProgress(
                device="pump-7",
                time=backend.now(),
                file="pump-fw-2.1.0.bin",
                index=0,
                count=2,
                done=5_592_405,
                total=5_592_405,
                rate=1.0,
            )
        )
        backend.publish(
            ConnectionChanged(
                device="meter-3", time=backend.now(), protocol="mqtt", state="connected"
            )
        )
        await pilot.pause(0.3)
        assert cell(app, "pump-7", "progress").endswith("50%")
        assert cell(app, "meter-3", "connection") == "connected"
        assert cell(app, "meter-3", "state") == "ok up to date"


async def test_a_flood_of_events_is_applied_in_batches_and_keys_stay_responsive() -> None:
    """1,000 devices and 20,000 events (progress coalesced by the engine's queue): the app
    drains in ticks; a key press is handled within a fraction of a second."""
    devices = [DeviceInfo(f"dev-{i:04d}", f"id{i}", "agent", "mqtt") for i in range(1000)]
    backend = FrozenBackend(devices=devices)
    backend.events.drain()  # the sample's events name other devices
    app = OtaApp(backend, frozen=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        now = backend.now()
        for step in range(10):
            for i in range(1000):
                name = f"dev-{i:04d}"
                backend.publish(
                    TransferProgress(
                        device=name,
                        time=now,
                        file="fw.bin",
                        index=0,
                        count=1,
                        done=step * 100,
                        total=1000,
                        rate=50.0,
                    )
                )
                backend.publish(InstallOutput(device=name, time=now, line=f"step {step}"))
        assert len(backend.events) == 1000 + 10_000  # progress coalesced per file
        started = time.perf_counter()
        await pilot.pause(0.3)
        await pilot.press("s")
        await pilot.pause()
        elapsed = time.perf_counter() - started
        assert len(backend.events) == 0
        assert app.state.devices["dev-0999"].active_transfers[0].done == 900
        assert len(app.state.devices["dev-0999"].output) == 10
        assert elapsed < 5.0, f"a drain of 11,000 events and a key took {elapsed:.2f}s"

        # every row's status first wide, then narrow: cells that shrink must not make the
        # table re-measure whole columns (quadratic: a minute with a thousand rows)
        for outbox_id, status in ((1, "INSTALLED_VERSION"), (2, "INIT")):
            started = time.perf_counter()
            for i in range(1000):
                backend.publish(
                    ReportQueued(
                        device=f"dev-{i:04d}",
                        time=now,
                        outbox_id=outbox_id * 10_000 + i,
                        version="2",
                        status=status,
                    )
                )
            await pilot.pause(0.3)
            await pilot.press("down")
            await pilot.pause()
            elapsed = time.perf_counter() - started
            assert elapsed < 5.0, f"1,000 {status} cells and a key took {elapsed:.2f}s"
        assert cell(app, "dev-0999", "status") == "INIT *"


async def test_the_palette_key_is_remappable() -> None:
    from textual.command import CommandPalette

    app, _ = make_app(keys={"app.palette": "ctrl+k"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+k")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)


async def test_a_column_widens_when_a_longer_value_arrives() -> None:
    """Widths come from the model's strings (never from measuring drawn cells): a longer
    status widens its column up to a maximum; past it the value ends with an ellipsis."""
    from otatui.engine.events import ReportQueued

    backend = FrozenBackend(devices=[DeviceInfo("a", "i", "agent", "mqtt")])
    backend.events.drain()
    backend.history = type(backend.history)([], {})
    app = OtaApp(backend, frozen=True)
    async with app.run_test(size=(120, 24)) as pilot:
        await pilot.pause()
        before = table(app).column_width("status")

        def report(outbox_id: int, status: str) -> None:
            backend.publish(
                ReportQueued(
                    device="a", time=backend.now(), outbox_id=outbox_id, version="1", status=status
                )
            )

        report(1, "INSTALLED_VERSION")
        await pilot.pause(0.3)
        assert cell(app, "a", "status") == "INSTALLED_VERSION *"
        assert "INSTALLED_VERSION *" in screen_text(app)
        report(2, "VENDOR_SPECIFIC_STATUS")
        await pilot.pause(0.3)
        assert table(app).column_width("status") >= len("VENDOR_SPECIFIC_STATUS *") > before
        assert "VENDOR_SPECIFIC_STATUS *" in screen_text(app)
        report(3, "X" * 60)
        await pilot.pause(0.3)
        widest = table(app).column_width("status")
        assert widest < 60
        assert "X" * (widest - 1) + "…" in screen_text(app)


async def test_prefetch_everything_from_the_fleet() -> None:
    app, backend = make_app()
    messages: list[str] = []
    app.notify = lambda message, **kw: messages.append(message)  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("p")
        await pilot.pause(0.3)
        assert ("prefetch", "") in backend.calls
        assert messages[0] == "prefetch: started"
        assert any(m.startswith("prefetch: ") and "files in the cache" in m for m in messages)


async def test_a_failure_and_a_waiting_apply_pop_up_but_not_the_past() -> None:
    from otatui.engine.events import AwaitingApply, ReportQueued

    app, backend = make_app()
    messages: list[str] = []
    app.notify = lambda message, **kw: messages.append(message)  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        assert messages == []  # the sample's awaiting apply happened before the app opened
        backend.publish(AwaitingApply(device="relay-6", time=backend.now(), version="0.4.1"))
        backend.publish(
            ReportQueued(
                device="door-5",
                time=backend.now(),
                outbox_id=9,
                version="4.3.0",
                status="TEST_ERROR",
                message="not enough space",
            )
        )
        await pilot.pause(0.3)
        assert messages == [
            "relay-6: 0.4.1 is ready and waits for you to apply it",
            "door-5: TEST_ERROR 4.3.0: not enough space",
        ]


async def test_the_palette_goes_to_any_screen() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"go to history")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert app.current_mode == "history"


async def test_a_row_moves_when_its_state_changes_under_the_state_order() -> None:
    from otatui.engine.events import ReportQueued

    app, backend = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("s")  # state order: attention first
        await pilot.pause()
        assert "door-5" not in row_names(app)[:4]
        backend.publish(
            ReportQueued(
                device="door-5",
                time=backend.now(),
                outbox_id=9,
                version="4.3.0",
                status="TEST_ERROR",
                message="not enough space",
            )
        )
        await pilot.pause(0.3)
        assert row_names(app)[:5] == ["door-5", "light-9", "pump-8", "relay-6", "sensor-1"]


async def test_many_rows_leaving_the_filtered_view_at_once() -> None:
    from otatui.engine.events import PhaseChanged

    devices = [DeviceInfo(f"dev-{i:04d}", f"id{i}", "agent", "mqtt") for i in range(1000)]
    backend = FrozenBackend(devices=devices)
    backend.events.drain()
    app = OtaApp(backend, frozen=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        for i in range(1000):
            backend.publish(
                PhaseChanged(device=f"dev-{i:04d}", time=backend.now(), phase="downloading")
            )
        await pilot.pause(0.3)
        await pilot.press("f", "f")  # updating
        await pilot.pause()
        assert len(row_names(app)) == 1000
        started = time.perf_counter()
        for i in range(0, 1000, 2):  # half of them finish
            backend.publish(PhaseChanged(device=f"dev-{i:04d}", time=backend.now(), phase="idle"))
        await pilot.pause(0.3)
        await pilot.press("down")
        await pilot.pause()
        elapsed = time.perf_counter() - started
        names = row_names(app)
        assert len(names) == 500 and all(int(n[-4:]) % 2 == 1 for n in names)
        assert elapsed < 5.0, f"500 rows leaving took {elapsed:.2f}s"


async def test_values_from_the_cloud_are_never_read_as_markup() -> None:
    from otatui.engine.events import ManifestReceived

    app, backend = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        backend.publish(
            ManifestReceived(
                device="gw-main", time=backend.now(), version="[b]9[/b]", name="[red]x", type="FILE"
            )
        )
        await pilot.pause(0.3)
        assert "[b]9[/b]" in app.export_screenshot()


async def test_notices_are_plain_text() -> None:
    from otatui.engine.events import ReportQueued

    app, backend = make_app()
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await pilot.pause()
        backend.publish(
            ReportQueued(
                device="door-5",
                time=backend.now(),
                outbox_id=9,
                version="4.3.0",
                status="TEST_ERROR",
                message="[bold]disk[/bold] full",
            )
        )
        await pilot.pause(0.3)
        assert "[bold]disk[/bold]" in app.export_screenshot()


async def test_a_click_on_the_cursor_row_opens_the_device() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.click("#fleet-table", offset=(20, 2))  # header, door-5, gw-main
        await pilot.pause()
        assert isinstance(app.screen, FleetScreen)
        assert app.screen.selected_name() == "gw-main"
        await pilot.click("#fleet-table", offset=(20, 2))
        await pilot.pause()
        assert isinstance(app.screen, DeviceScreen) and app.screen.device_name == "gw-main"


async def test_a_filter_longer_than_the_box_scrolls_to_its_end() -> None:
    """The filter box repaints only itself per key (no screen layout) and still scrolls."""
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("slash", *("x" * 90), "y", "z")
        await pilot.pause()
        filt = app.screen.query_one("#fleet-filter", Input)
        assert filt.value.endswith("xyz") and filt.scroll_offset.x > 0
        assert "xxyz" in screen_text(app)
        assert row_names(app) == []


async def test_the_long_lived_objects_are_kept_out_of_full_collections_while_open() -> None:
    import gc

    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert gc.get_freeze_count() > 0  # the app, its screens and the seeded state
    assert gc.get_freeze_count() == 0  # collectable again once the app is gone
