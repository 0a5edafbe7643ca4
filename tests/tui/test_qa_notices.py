"""QA: pop-up notices are short (4 s): they cover the Fleet's right half at 80x24."""

from __future__ import annotations

from otatui.engine.events import ReportQueued
from otatui.tui.app import NOTICE_S, OtaApp
from otatui.tui.frozen import FROZEN_NOW, FrozenBackend


async def test_a_failure_notice_stays_four_seconds() -> None:
    backend = FrozenBackend()
    app = OtaApp(backend, frozen=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        backend.events.put(
            ReportQueued(
                device="door-5",
                time=FROZEN_NOW,
                outbox_id=9100,
                version="4.3.0",
                status="INSTALL_ERROR",
                message="exit 3",
            )
        )
        app.drain()
        await pilot.pause()
        mine = [n for n in app._notifications if "door-5" in n.message]
        assert mine and all(n.timeout == NOTICE_S == 4.0 for n in mine)
        assert any(e.status == "INSTALL_ERROR" for e in app.state.devices["door-5"].timeline)
