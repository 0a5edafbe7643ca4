"""Faults around one update, the engine in-process against the local connector (loopback only):
the MQTT connection kicked again and again, the MQTT listener gone and back, bursts of HTTP 500
and slow answers, a download cut several times, a file that is not what the manifest pins, the
install hook hanging, crashing or leaving a service running. Each ends with the update done or an
honest error, every report delivered once, and the session ready for the next manifest.

A report whose confirmation is lost is found on the connector and not sent twice; a store that
cannot record confirmations does not make the outbox flood the connector; a burst of 500s while a
new device activates is retried.

(A device disappearing from the serial link mid-transfer is the serial link's own test:
tests/functional/test_serial_push.py.)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
from pathlib import Path

import pytest
from engine_helpers import TOKENS, statuses, wait_status
from fault_helpers import (
    assert_delivered_once,
    assert_none_lost,
    booted_agent,
    eventually,
    fault_agent,
    final_statuses,
    otau_in,
    running_fleet,
    site_config,
    start_mqtt_listener,
    stop_mqtt_listener,
)

from otatui.connector import Connector
from otatui.engine.events import ConnectionChanged, TransferFinished

OK = "INSTALLED_VERSION"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
async def connector():
    async with Connector(devices=list(TOKENS.items())) as c:
        yield c


def manifest(version: str, content_id: str, data: bytes | None = None) -> dict[str, object]:
    item = content_id + (f"#sha256={sha(data)}" if data is not None else "")
    return {"version": version, "name": f"fw {version}", "type": "FILE", "payload": item}


async def test_mqtt_connection_kicked_throughout_an_update_loses_and_repeats_nothing(
    tmp_path: Path, connector: Connector
) -> None:
    firmware = os.urandom(1_500_000)
    connector.add_content("fw.bin", firmware)
    connector.faults.delay_s = 0.05  # every HTTP answer a little late: the update takes a while
    async with booted_agent(tmp_path, connector, "a0001", "mqtt") as (records, seen):
        connector.set_config_otau("a0001", manifest("2.0.0-slow", "fw.bin", firmware))
        kicks = 0
        while ("2.0.0-slow", OK) not in statuses(connector, "a0001"):
            await asyncio.sleep(0.15)
            kicks += connector.kick("a0001")
            assert kicks < 200, "the update never completed under kicks"
        await eventually(lambda: connector.is_connected("a0001"), 10, "reconnected")
        await asyncio.wait_for(connector.wait_for_ack("a0001"), 10)
        await asyncio.sleep(0.3)  # let the last confirmations land in the store
    assert kicks >= 3, "the update ended before the connection was kicked a few times"
    assert final_statuses(connector, "a0001", "2.0.0-slow") == [OK]
    got = json.loads((records / "2.0.0-slow.json").read_text())
    assert got["files"] == {"fw.bin": sha(firmware)}
    assert_delivered_once(tmp_path / "data" / "otatui.db", connector, "gw", "a0001")
    lost = [e for e in seen if isinstance(e, ConnectionChanged) and e.state == "backoff"]
    assert lost, "the kicks were never shown as a lost connection"


async def test_mqtt_listener_stopped_and_restarted_mid_update(
    tmp_path: Path, connector: Connector
) -> None:
    firmware = os.urandom(200_000)
    connector.add_content("fw.bin", firmware)
    async with booted_agent(tmp_path, connector, "a0001", "mqtt") as (records, seen):
        connector.set_config_otau("a0001", manifest("3.0.0-slow", "fw.bin", firmware))
        await wait_status(connector, "a0001", "3.0.0-slow", "INSTALL")
        port = await stop_mqtt_listener(connector)
        # While the listener is gone the install finishes; its reports wait in the outbox.
        await asyncio.sleep(2.0)
        assert ("3.0.0-slow", OK) not in statuses(connector, "a0001")
        await start_mqtt_listener(connector, port)
        await wait_status(connector, "a0001", "3.0.0-slow", OK, timeout=30)
        # A newer manifest after the outage is handled as usual.
        connector.set_config_otau("a0001", manifest("3.1.0", "fw.bin"))
        await wait_status(connector, "a0001", "3.1.0", OK)
        await asyncio.sleep(0.3)
    assert final_statuses(connector, "a0001", "3.0.0-slow") == [OK]
    assert json.loads((records / "3.0.0-slow.json").read_text())["files"] == {
        "fw.bin": sha(firmware)
    }
    assert_delivered_once(tmp_path / "data" / "otatui.db", connector, "gw", "a0001")
    refused = [e for e in seen if isinstance(e, ConnectionChanged) and e.state == "backoff"]
    assert refused and all(e.reason for e in refused)


async def test_http_500_bursts_and_delays_during_an_update(
    tmp_path: Path, connector: Connector
) -> None:
    firmware = os.urandom(600_000)
    connector.add_content("fw.bin", firmware)
    async with booted_agent(tmp_path, connector, "a0002", "http") as (_records, seen):
        connector.faults.delay_s = 0.05
        connector.faults.fail_next(2)  # the next two requests, whatever they are
        connector.set_config_otau("a0002", manifest("4.0.0-slow", "fw.bin", firmware))
        await wait_status(connector, "a0002", "4.0.0-slow", "INSTALL", timeout=30)
        connector.faults.fail_next(2, path="/onep:v1/stack/alias")  # reports and the poll
        await wait_status(connector, "a0002", "4.0.0-slow", OK, timeout=40)
        assert connector.faults.fail_count == 0
        connector.faults.fail_next(2, status=503, path="/provision/download")
        connector.set_config_otau("a0002", manifest("4.1.0", "fw.bin"))
        await wait_status(connector, "a0002", "4.1.0", OK, timeout=30)
        await asyncio.sleep(0.4)
    for version in ("4.0.0-slow", "4.1.0"):
        assert final_statuses(connector, "a0002", version) == [OK]
    assert_delivered_once(tmp_path / "data" / "otatui.db", connector, "gw", "a0002")
    assert any(isinstance(e, ConnectionChanged) and "500" in e.reason for e in seen)


@pytest.mark.parametrize("protocol", ["mqtt", "http"])
async def test_download_dropped_several_times_resumes_and_a_wrong_file_fails_honestly(
    tmp_path: Path, connector: Connector, protocol: str
) -> None:
    firmware = os.urandom(2_000_000)
    connector.add_content("fw.bin", firmware)
    identity = "a0001" if protocol == "mqtt" else "a0002"
    async with booted_agent(tmp_path, connector, identity, protocol) as (records, seen):
        connector.faults.drop_download_after(300_000, count=3)
        connector.set_config_otau(identity, manifest("5.0.0", "fw.bin", firmware))
        await wait_status(connector, identity, "5.0.0", OK, timeout=40)
        assert connector.faults.drop_count == 0
        assert json.loads((records / "5.0.0.json").read_text())["files"] == {
            "fw.bin": sha(firmware)
        }
        # A download whose bytes are not what the manifest pins ends in one honest
        # DOWNLOAD_ERROR, nothing of it stays in the cache, and the next manifest still works.
        other = os.urandom(1_000_000)
        connector.add_content("other.bin", other)
        connector.faults.drop_download_after(400_000, count=1)
        connector.set_config_otau(identity, manifest("5.1.0", "other.bin", b"not other"))
        await wait_status(connector, identity, "5.1.0", "DOWNLOAD_ERROR", timeout=30)
        connector.set_config_otau(identity, manifest("5.2.0", "fw.bin", firmware))
        await wait_status(connector, identity, "5.2.0", OK, timeout=30)
        await asyncio.sleep(0.3)
    (error,) = [r for r in otau_in(connector, identity) if r["status"] == "DOWNLOAD_ERROR"]
    assert "sha256" in error["message"] and "\n" not in error["message"], error
    assert final_statuses(connector, identity, "5.1.0") == ["DOWNLOAD_ERROR"]
    failed = [e for e in seen if isinstance(e, TransferFinished) and not e.ok]
    assert len(failed) == 1 and failed[0].message == error["message"]
    blobs = list((tmp_path / "cache" / "sha256").iterdir())
    assert [p.name for p in blobs] == [sha(firmware)]  # nothing of other.bin, nothing torn
    assert sha(blobs[0].read_bytes()) == blobs[0].name
    assert list((tmp_path / "cache" / "partial").iterdir()) == []
    assert_delivered_once(tmp_path / "data" / "otatui.db", connector, "gw", identity)


async def test_install_hook_hanging_crashing_or_leaving_a_service_running(
    tmp_path: Path, connector: Connector
) -> None:
    connector.add_content("fw.bin", b"firmware")
    async with booted_agent(tmp_path, connector, "a0001", "mqtt", timeout=1.5) as (records, _):
        connector.set_config_otau("a0001", manifest("6.0.0-hang", "fw.bin"))
        await wait_status(connector, "a0001", "6.0.0-hang", "INSTALL_ERROR", timeout=20)
        connector.set_config_otau("a0001", manifest("6.1.0-crash", "fw.bin"))
        await wait_status(connector, "a0001", "6.1.0-crash", "INSTALL_ERROR", timeout=20)
        # A hook that leaves a service running (holding its output) ends when it exits.
        connector.set_config_otau("a0001", manifest("6.2.0-daemon", "fw.bin"))
        await wait_status(connector, "a0001", "6.2.0-daemon", OK, timeout=20)
        await asyncio.sleep(0.3)
    reports = otau_in(connector, "a0001")
    hang = [r for r in reports if r["version"] == "6.0.0-hang"]
    crash = [r for r in reports if r["version"] == "6.1.0-crash"]
    assert "timed out after 1.5 s" in hang[-1]["message"], hang[-1]
    assert "INSTALL_STEP" in [r["status"] for r in hang]  # its output was shown while it hung
    assert "SIGSEGV" in crash[-1]["message"], crash[-1]
    for version in ("6.0.0-hang", "6.1.0-crash"):
        assert final_statuses(connector, "a0001", version) == ["INSTALL_ERROR"]
    service = int((records / "service.pid").read_text())
    try:
        os.kill(service, 0)  # the service the hook started is left running
    finally:
        os.kill(service, signal.SIGKILL)
    assert_delivered_once(tmp_path / "data" / "otatui.db", connector, "gw", "a0001")


@pytest.mark.parametrize("protocol", ["mqtt", "http"])
async def test_a_report_whose_confirmation_is_lost_is_recorded_once(
    tmp_path: Path, connector: Connector, protocol: str
) -> None:
    identity = "a0001" if protocol == "mqtt" else "a0002"
    async with booted_agent(tmp_path, connector, identity, protocol):
        connector.faults.lose_confirmations(1)
        offer = {"version": "9.0.0", "name": "cfg", "type": "JSON", "payload": {"a": 1}}
        connector.set_config_otau(identity, offer)
        await wait_status(connector, identity, "9.0.0", OK, timeout=20)
        await asyncio.sleep(0.5)
    assert connector.faults.unconfirmed_writes == 0  # the fault did fire
    db = tmp_path / "data" / "otatui.db"
    assert assert_none_lost(db, connector, "gw", identity) == []


async def test_activation_through_a_burst_of_500_still_provisions_the_device(
    tmp_path: Path,
) -> None:
    async with Connector(devices=[("fresh-9", None)]) as connector:
        device = fault_agent("gw", "a0002", "http", tmp_path / "records")
        device["identity"] = "fresh-9"
        del device["token"]
        connector.faults.fail_next(2, path="/provision/activate")
        async with running_fleet(site_config(tmp_path, connector, [device])) as (_fleet, seen):

            def stopped() -> list[str]:
                return [
                    e.reason
                    for e in seen
                    if isinstance(e, ConnectionChanged) and e.state == "stopped"
                ]

            await eventually(lambda: bool(stopped() or otau_in(connector, "fresh-9")), 15)
            assert stopped() == [], "the device was given up on"
            await wait_status(connector, "fresh-9", "1.0.0", OK, timeout=5)
        assert connector.faults.fail_count == 0
        assert (tmp_path / "data" / "tokens" / "fresh-9").is_file()


async def test_a_store_that_cannot_confirm_does_not_flood_the_connector(
    tmp_path: Path, connector: Connector
) -> None:
    from otatui.store import StoreError

    device = fault_agent("gw", "a0001", "mqtt", tmp_path / "records")
    async with running_fleet(site_config(tmp_path, connector, [device])) as (fleet, _seen):
        await wait_status(connector, "a0001", "1.0.0", OK)
        store = fleet.store
        assert store is not None
        # The connector has the boot report before otatui records its confirmation.
        await eventually(lambda: store.count_pending("gw") == 0, 10, "the boot report confirmed")

        def disk_full(*_args: object, **_kwargs: object) -> int:
            raise StoreError(f"store {tmp_path}: confirm reports failed: database or disk is full")

        store.confirm = disk_full  # type: ignore[method-assign]
        offer = {"version": "9.1.0", "name": "cfg", "type": "JSON", "payload": {"a": 1}}
        connector.set_config_otau("a0001", offer)
        await wait_status(connector, "a0001", "9.1.0", "INIT", timeout=10)
        await asyncio.sleep(2.0)
    reports = otau_in(connector, "a0001")
    init = [r for r in reports if r["version"] == "9.1.0" and r["status"] == "INIT"]
    assert len(init) <= 3, f"{len(init)} copies of one report in 2 s"
