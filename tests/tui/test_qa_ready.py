"""QA: the 10 Hz drain never redraws a screen that is pushed but not mounted yet."""

from __future__ import annotations

from otatui.engine.events import ConnectionChanged
from otatui.tui.app import OtaApp
from otatui.tui.frozen import FROZEN_NOW, FrozenBackend
from otatui.tui.screens.device import DeviceScreen

SIZE = (80, 24)


async def test_a_drain_right_after_a_push_waits_for_the_screen() -> None:
    backend = FrozenBackend()
    app = OtaApp(backend, frozen=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        for _ in range(20):
            screen = DeviceScreen("pump-8")
            app.push_screen(screen)
            app.refresh_screen()  # what the drain does; must not query missing widgets
            backend.events.put(
                ConnectionChanged(
                    device="pump-8", time=FROZEN_NOW, protocol="mqtt", state="connected"
                )
            )
            app.drain()
            await pilot.pause()
            assert screen.is_mounted
            await pilot.press("escape")
            await pilot.pause()
        assert not app.return_code


async def test_a_screen_draws_itself_once_ready() -> None:
    app = OtaApp(FrozenBackend(), frozen=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = DeviceScreen("pump-8")
        await app.push_screen(screen)
        await pilot.pause()
        assert screen.ready
        assert "pump-8" in str(screen.query_one("#device-title").render())
