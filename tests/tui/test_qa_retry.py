"""QA: retry is not offered for an invalid manifest (it can only fail again), and says why."""

from __future__ import annotations

from otatui.engine.events import (
    ConnectionChanged,
    ManifestReceived,
    PhaseChanged,
    ReportQueued,
)
from otatui.tui.app import OtaApp
from otatui.tui.frozen import FROZEN_NOW, FrozenBackend
from otatui.tui.screens.device import DeviceScreen, available_actions, retry_refusal


async def test_retry_is_greyed_out_for_an_invalid_manifest() -> None:
    backend = FrozenBackend()
    app = OtaApp(backend, frozen=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        for e in (
            ConnectionChanged(device="pump-7", time=FROZEN_NOW, protocol="mqtt", state="connected"),
            ManifestReceived(
                device="pump-7",
                time=FROZEN_NOW,
                version="9.9.9",
                valid=False,
                reason='payload "file:///x" is not an http(s) URL',
            ),
            ReportQueued(
                device="pump-7",
                time=FROZEN_NOW,
                outbox_id=9001,
                version="9.9.9",
                status="TEST_ERROR",
            ),
            PhaseChanged(device="pump-7", time=FROZEN_NOW, phase="idle"),
        ):
            backend.events.put(e)
        app.drain()
        d = app.state.devices["pump-7"]
        assert "retry" not in available_actions(d)
        assert retry_refusal(d) == (
            "the offered manifest is invalid; it needs a new offer from the cloud"
        )
        assert "needs a new offer from the cloud" in d.why(FROZEN_NOW)
        screen = DeviceScreen("pump-7")
        await app.push_screen(screen)
        await pilot.pause()
        assert screen.check_action("retry", ()) is None  # shown, disabled
        await pilot.press("r")
        await pilot.pause()
        assert ("retry", "pump-7") not in backend.calls
