"""The outbox with reports in doubt: a write whose confirmation was lost is sent again with its
ORIGINAL timestamp (a timestamped batch: the same point of the time series), never as a second
fresh write stamped by the connector."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from engine_helpers import TOKENS, agent, wait_status, write_config

from otatui.config import load_config
from otatui.connector import Connector
from otatui.engine.fleet import Fleet
from otatui.store import StoreReader


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
