"""The monitor reads `otau_in` every `read_interval` seconds: reports the device writes between
two reads are not seen one by one, only the latest at each read. Its `ReportObserved` events say
so (`sampled=True`), so the UI labels them "seen", not "sent"."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import httpx
from engine_helpers import TOKENS
from wait_helpers import eventually

from otatui.connector import Connector
from otatui.engine.events import Event, EventBus, ReportObserved
from otatui.engine.monitor import Monitor
from otatui.murano.http import HttpChannel
from otatui.store import Store

IDENTITY = "a0003"


async def device_writes(connector: Connector, *reports: dict[str, str]) -> None:
    async with httpx.AsyncClient() as client:
        for report in reports:
            resp = await client.post(
                f"{connector.http_url}/onep:v1/stack/alias",
                data={"otau_in": json.dumps(report)},
                headers={"X-Exosite-CIK": TOKENS[IDENTITY]},
            )
            assert resp.status_code == 204


async def test_a_monitor_samples_otau_in_and_says_so(tmp_path: Path) -> None:
    seen: list[Event] = []
    bus = EventBus()
    bus.subscribe(seen.append)
    store = Store.open(tmp_path / "otatui.db")
    try:
        async with (
            Connector(devices=[(IDENTITY, TOKENS[IDENTITY])]) as connector,
            httpx.AsyncClient() as client,
        ):
            channel = HttpChannel(
                client, connector.http_url, TOKENS[IDENTITY], request_timeout_ms=2_000
            )
            reads = 0
            read = channel.read

            async def counted(aliases: Sequence[str]) -> dict[str, str]:
                nonlocal reads
                got = await read(aliases)
                reads += 1
                return got

            channel.read = counted  # type: ignore[method-assign]
            monitor = Monitor(name="watch", channel=channel, store=store, bus=bus, read_interval=2)
            task = asyncio.create_task(monitor.run())
            try:
                await eventually(lambda: reads == 1, 10, "the first read")
                steps = ["DOWNLOAD", "INSTALL", "INSTALLED_VERSION"]
                await device_writes(connector, *({"version": "7.0.0", "status": s} for s in steps))
                assert reads == 1, "the three reports were not written between two reads"

                def observed() -> list[ReportObserved]:
                    return [e for e in seen if isinstance(e, ReportObserved)]

                await eventually(
                    lambda: any(e.status == "INSTALLED_VERSION" for e in observed()), 10
                )
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    finally:
        store.close()
    got = observed()
    # Three reports written between two reads: the monitor saw the latest only, and says so.
    assert [e.status for e in got] == ["INSTALLED_VERSION"]
    assert all(e.sampled for e in got)
    assert json.loads(json.dumps(got[0].to_dict()))["sampled"] is True
