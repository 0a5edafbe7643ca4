"""A store that cannot record a session step for a while (disk full) during an update, the
engine in-process against the local connector: the reports are held, written once the store
works, and reach the connector in order, once each; one error says what happened."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from engine_helpers import TOKENS, agent, wait_status
from fault_helpers import (
    assert_delivered_once,
    eventually,
    otau_in,
    running_fleet,
    site_config,
)

from otatui.config import load_config
from otatui.connector import Connector
from otatui.engine.events import Event, EventBus, SessionError
from otatui.engine.fleet import Fleet
from otatui.store import StoreError

OK = "INSTALLED_VERSION"


@pytest.fixture
async def connector():  # type: ignore[no-untyped-def]
    async with Connector(devices=list(TOKENS.items())) as c:
        yield c


@pytest.mark.parametrize(("protocol", "identity"), [("mqtt", "a0001"), ("http", "a0002")])
async def test_steps_the_store_cannot_record_are_held_and_delivered_in_order(
    tmp_path: Path, connector: Connector, protocol: str, identity: str
) -> None:
    device = agent("gw", identity, protocol, tmp_path / "records")
    async with running_fleet(site_config(tmp_path, connector, [device])) as (fleet, seen):
        await wait_status(connector, identity, "1.0.0", OK)
        offer = {"name": "cfg", "type": "JSON", "payload": {"a": 1}}
        connector.set_config_otau(identity, {"version": "9.1.0", **offer})
        await wait_status(connector, identity, "9.1.0", OK)
        store = fleet.store
        assert store is not None
        await eventually(lambda: store.count_pending("gw") == 0, 10, "9.1.0 all confirmed")
        real_record_step = store.record_step
        failures = 3  # the first attempt and two retries (0.5 s, 1 s later) fail

        def disk_full(**kwargs):  # type: ignore[no-untyped-def]
            nonlocal failures
            if failures > 0:
                failures -= 1
                raise StoreError("store otatui.db: record session step failed: disk is full")
            return real_record_step(**kwargs)

        store.record_step = disk_full  # type: ignore[method-assign]
        connector.set_config_otau(identity, {"version": "9.2.0", **offer})
        await wait_status(connector, identity, "9.2.0", OK, timeout=15)
        await asyncio.sleep(0.3)
    assert failures == 0
    reports = otau_in(connector, identity)
    normal = [r["status"] for r in reports if r["version"] == "9.1.0"]
    held = [r["status"] for r in reports if r["version"] == "9.2.0"]
    assert held == normal, (held, normal)  # nothing lost, nothing twice, in order
    errors = [e.message for e in seen if isinstance(e, SessionError)]
    assert len(errors) == 1 and "disk is full" in errors[0] and "held" in errors[0], errors
    assert_delivered_once(tmp_path / "data" / "otatui.db", connector, "gw", identity)


async def test_a_store_that_cannot_be_read_while_a_bridge_is_offline_says_so_once(
    tmp_path: Path,
) -> None:
    """Offline and idle, a bridge looks for a fetched manifest every second: a store that
    cannot be read makes one error, not one a second."""
    from test_engine_bridge import ScriptedLink, device_flow

    first = Connector(devices=list(TOKENS.items()))
    await first.start()
    device = {
        "name": "sensor-1", "identity": "a0002", "token": TOKENS["a0002"], "protocol": "http",
        "role": "bridge", "installed_version": "1.0.0", "link": "serial:/dev/ttyUSB0",
    }  # fmt: skip
    config = load_config(site_config(tmp_path, first, [device]))
    await first.stop()  # the connector is unreachable from the start
    seen: list[Event] = []
    bus = EventBus()
    bus.subscribe(seen.append)
    link = ScriptedLink(device_flow)
    fleet = Fleet(config, bus=bus, link_factory=lambda d: link, offline_after=0.3)
    async with fleet:
        store = fleet.store
        assert store is not None

        def unreadable(*_args: object) -> None:
            raise StoreError("store otatui.db: read fetched manifest failed: disk I/O error")

        store.get_fetched = unreadable  # type: ignore[method-assign]
        fleet.start()
        await asyncio.sleep(3.5)
    errors = [e.message for e in seen if isinstance(e, SessionError)]
    assert len(errors) == 1 and "disk I/O error" in errors[0], errors
    assert "looked at again" in errors[0]
