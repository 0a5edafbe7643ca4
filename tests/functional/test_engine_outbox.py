"""The outbox with reports in doubt: a write whose confirmation was lost is sent again with its
ORIGINAL timestamp (a timestamped batch: the same point of the time series), never as a second
fresh write stamped by the connector."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from engine_helpers import TOKENS, agent, wait_status, write_config
from fault_helpers import assert_delivered_once, otau_in, running_fleet, site_config

from otatui.config import load_config
from otatui.connector import Connector
from otatui.engine.events import Event, EventBus, SessionError
from otatui.engine.fleet import Fleet
from otatui.engine.store_retry import StoreRetry
from otatui.store import StoreError, StoreReader


@pytest.fixture
async def connector():  # type: ignore[no-untyped-def]
    c = Connector(devices=list(TOKENS.items()))
    c.mqtt.faults = c.faults  # the broker takes the same fault switches
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


@pytest.mark.parametrize(("protocol", "identity"), [("mqtt", "a0001"), ("http", "a0002")])
async def test_a_report_in_doubt_is_sent_again_with_its_original_time(
    tmp_path: Path, connector: Connector, protocol: str, identity: str
) -> None:
    cfg = write_config(
        tmp_path / "site.toml",
        connector,
        [agent("gw", identity, protocol, tmp_path / "records")],
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
    )
    async with Fleet(load_config(cfg), request_timeout_ms=3_000) as fleet:
        fleet.start()
        await wait_status(connector, identity, "1.0.0", "INSTALLED_VERSION")
        connector.faults.lose_confirmations(1)
        offer = {"version": "9.0.0", "name": "cfg", "type": "JSON", "payload": {"a": 1}}
        connector.set_config_otau(identity, offer)
        await wait_status(connector, identity, "9.0.0", "INSTALLED_VERSION", timeout=30)
        await asyncio.sleep(0.3)
    assert connector.faults.unconfirmed_writes == 0  # the fault did fire
    with StoreReader.open_readonly(tmp_path / "data" / "otatui.db") as store:
        assert store.count_pending("gw") == 0
        produced = {
            r.value: r.time
            for r in store.iter_history(device="gw")
            if r.direction == "out" and r.resource == "otau_in"
        }
    received = connector.reports(identity, "otau_in")
    values = [r.value for r in received]
    repeated = [v for v in set(values) if values.count(v) > 1]
    assert len(repeated) == 1, [json.loads(v) for v in values]  # the one whose answer was lost
    first, again = [r for r in received if r.value == repeated[0]]
    assert first.via in ("mqtt", "http")  # the fresh write the connector stored
    assert again.via in ("mqtt-batch", "http-record")  # re-sent as the same point in time
    original = produced[repeated[0]]
    if again.via == "mqtt-batch":
        assert abs(again.timestamp - original) < 0.001
    else:
        assert again.timestamp == int(original)


@pytest.mark.parametrize(("protocol", "identity"), [("mqtt", "a0001"), ("http", "a0002")])
async def test_a_store_that_cannot_record_a_confirmation_holds_it_and_resumes(
    tmp_path: Path, connector: Connector, protocol: str, identity: str
) -> None:
    """Disk full while recording a delivery: the report is not sent again, nothing else is sent,
    one error says so, and once the store works the update goes on, each report sent once."""
    device = agent("gw", identity, protocol, tmp_path / "records")
    async with running_fleet(site_config(tmp_path, connector, [device])) as (fleet, seen):
        await wait_status(connector, identity, "1.0.0", "INSTALLED_VERSION")
        store = fleet.store
        assert store is not None
        real_confirm = store.confirm
        attempts = 0

        def disk_full(*_args: object, **_kwargs: object) -> int:
            nonlocal attempts
            attempts += 1
            raise StoreError("store otatui.db: confirm reports failed: database or disk is full")

        store.confirm = disk_full  # type: ignore[method-assign]
        offer = {"version": "9.1.0", "name": "cfg", "type": "JSON", "payload": {"a": 1}}
        connector.set_config_otau(identity, offer)
        await wait_status(connector, identity, "9.1.0", "INIT", timeout=10)
        await asyncio.sleep(2.0)
        held = [r for r in otau_in(connector, identity) if r["version"] == "9.1.0"]
        assert [r["status"] for r in held] == ["INIT"]  # not again, and nothing after it
        assert 2 <= attempts <= 4, attempts  # 0.5 s, then 1 s: backing off, not spinning
        errors = [e.message for e in seen if isinstance(e, SessionError)]
        assert len(errors) == 1, errors
        assert "database or disk is full" in errors[0]
        assert "will not be sent again" in errors[0] and "\n" not in errors[0]

        store.confirm = real_confirm  # type: ignore[method-assign]
        await wait_status(connector, identity, "9.1.0", "INSTALLED_VERSION", timeout=10)
        await asyncio.sleep(0.3)
    assert [e for e in seen if isinstance(e, SessionError)] == [
        e for e in seen if isinstance(e, SessionError) and e.message == errors[0]
    ]
    assert_delivered_once(tmp_path / "data" / "otatui.db", connector, "gw", identity)


async def test_store_retry_waits_longer_each_time_and_speaks_once_per_episode() -> None:
    seen: list[Event] = []
    bus = EventBus()
    bus.subscribe(seen.append)
    retry = StoreRetry(name="gw", bus=bus)
    delays = [retry.failed(f"disk full {n}") for n in range(10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    assert [e.message for e in seen if isinstance(e, SessionError)] == ["disk full 0"]
    retry.succeeded()
    assert not retry.failing
    assert retry.failed("disk full again") == 0.5
    assert [e.message for e in seen if isinstance(e, SessionError)][-1] == "disk full again"
    assert retry.errors == 2
