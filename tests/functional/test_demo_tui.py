"""The demo under the TUI: the simulated site's updates reach the app's screens live."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from otatui.demo.command import demo_site
from otatui.tui.app import OtaApp
from otatui.tui.backend import FleetBackend

pytestmark = pytest.mark.timeout(120)


async def test_demo_fleet_updates_live_in_the_tui(tmp_path: Path) -> None:
    async with demo_site(tmp_path, pace=0.3, step_delay=0.02) as demo:
        app = OtaApp(FleetBackend(demo.config), keys=demo.config.keys, no_color=False)
        play = asyncio.create_task(demo.player.play())
        try:
            async with app.run_test(size=(120, 40)) as pilot:
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline:
                    done = [o.ok for o in demo.player.outcomes()]
                    if done and all(done):
                        break
                    await pilot.pause(0.2)
                await pilot.pause(1.0)  # the app drains its event queue at <= 10 Hz
                views = app.state.devices
                assert all(o.ok for o in demo.player.outcomes())
                assert views["gateway-01"].installed_version == "2.1.0"
                assert views["valve-12"].last_status == "INSTALL_ERROR"
                assert views["sensor-s1"].installed_version == "2.1.0"
                assert views["kiosk-09"].connection == "auth_failed"
                assert not app.start_error
                await pilot.press("q")
        finally:
            play.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await play
