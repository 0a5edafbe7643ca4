"""The outbox with reports in doubt (a write whose confirmation was lost): found on the connector
by a read and not sent again; when a read cannot tell (its value was sent before) sent
again with its ORIGINAL timestamp, never as a second fresh write. And a store that cannot record
a confirmation (disk full)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from engine_helpers import TOKENS, agent, wait_status
from fault_helpers import assert_delivered_once, eventually, otau_in, running_fleet, site_config

from otatui.config import load_config
from otatui.connector import Connector
from otatui.engine.events import Event, EventBus, SessionError
from otatui.engine.fleet import Fleet
from otatui.engine.store_retry import StoreRetry
from otatui.store import PendingReport, Store, StoreError, StoreReader

OK = "INSTALLED_VERSION"


@pytest.fixture
async def connector():  # type: ignore[no-untyped-def]
    c = Connector(devices=list(TOKENS.items()))
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


# An install hook printing its arguments 2..n one by one, argv[1] seconds apart. (Install output
# becomes INSTALL_STEP reports at most one per 2 s, the latest line.)
STEPS_HOOK = r"""
import sys, time
for line in sys.argv[2:]:
    print(line, flush=True)
    time.sleep(float(sys.argv[1]))
"""


async def update_losing_one_confirmation(
    tmp_path: Path,
    connector: Connector,
    protocol: str,
    identity: str,
    lines: list[str],
    interval: float = 0.4,
) -> Fleet:
    """Boot, offer 9.0.0 (whose hook prints `lines`), and lose the confirmation of the report
    after the first line's; returns the fleet once the update ended (closed)."""
    device = agent("gw", identity, protocol, tmp_path / "records")
    device["install_command"] = [sys.executable, "-c", STEPS_HOOK, str(interval), *lines]
    config = site_config(tmp_path, connector, [device])
    async with Fleet(load_config(config), request_timeout_ms=3_000) as fleet:
        fleet.start()
        await wait_status(connector, identity, "1.0.0", OK)
        offer = {"version": "9.0.0", "name": "cfg", "type": "JSON", "payload": {"a": 1}}
        connector.set_config_otau(identity, offer)
        first = {"version": "9.0.0", "status": "INSTALL_STEP", "message": lines[0]}
        await eventually(lambda: first in otau_in(connector, identity), 20, "the first line")
        connector.faults.lose_confirmations(1)  # the next write: the next line's report
        await wait_status(connector, identity, "9.0.0", OK, timeout=30)
        await asyncio.sleep(0.3)
    assert connector.faults.unconfirmed_writes == 0  # the fault did fire
    return fleet


@pytest.mark.parametrize(("protocol", "identity"), [("mqtt", "a0001"), ("http", "a0002")])
async def test_a_report_in_doubt_that_arrived_is_found_on_the_connector_not_sent_again(
    tmp_path: Path, connector: Connector, protocol: str, identity: str
) -> None:
    fleet = await update_losing_one_confirmation(
        tmp_path, connector, protocol, identity, ["step one", "step two", "step three"]
    )
    assert fleet.devices["gw"].session is not None
    assert fleet.devices["gw"].session.outbox.found == 1  # read back, not re-sent
    assert_delivered_once(tmp_path / "data" / "otatui.db", connector, "gw", identity)


@pytest.mark.parametrize(("protocol", "identity"), [("mqtt", "a0001"), ("http", "a0002")])
async def test_a_report_in_doubt_whose_value_was_sent_before_goes_again_with_its_original_time(
    tmp_path: Path, connector: Connector, protocol: str, identity: str
) -> None:
    """The documented limit (engine/outbox.py): the connector's value cannot tell whether a
    report whose value was sent before arrived, so it is sent again as a timestamped record with
    its original time; the first copy was stamped on arrival, so the cloud holds it twice."""
    await update_losing_one_confirmation(
        tmp_path, connector, protocol, identity, ["step one", "step one"], interval=2.2
    )
    with StoreReader.open_readonly(tmp_path / "data" / "otatui.db") as store:
        assert store.count_pending("gw") == 0
        produced = [
            (r.value, r.time)
            for r in store.iter_history(device="gw")
            if r.direction == "out" and r.resource == "otau_in"
        ]
    received = connector.reports(identity, "otau_in")
    step_one = [r for r in received if json.loads(r.value).get("message") == "step one"]
    assert len(step_one) == 3, [json.loads(r.value) for r in received]  # 2 made, 1 again
    first, second, again = step_one
    assert (first.via, second.via) == (protocol, protocol)  # fresh writes, stamped on arrival
    assert again.via in ("mqtt-batch", "http-record")  # re-sent as the point it was made
    (original,) = [t for v, t in produced if v == second.value][1:]
    if again.via == "mqtt-batch":
        assert abs(again.timestamp - original) < 0.001
    else:
        assert again.timestamp == int(original)
    assert abs(second.timestamp - original) < 2  # ... a moment before it arrived: two points
    others = [r.value for r in received if r not in step_one]
    assert len(others) == len(set(others))  # every other report once


async def test_a_report_in_doubt_that_never_arrived_is_sent_again(
    tmp_path: Path, connector: Connector
) -> None:
    """HTTP 500 to a report's write: in doubt, the read shows it is not there, it goes again."""
    lines = ["step one", "step two", "step three"]
    device = agent("gw", "a0002", "http", tmp_path / "records")
    device["install_command"] = [sys.executable, "-c", STEPS_HOOK, "0.4", *lines]
    config = site_config(tmp_path, connector, [device])
    async with Fleet(load_config(config), request_timeout_ms=3_000) as fleet:
        fleet.start()
        await wait_status(connector, "a0002", "1.0.0", OK)
        offer = {"version": "9.0.0", "name": "cfg", "type": "JSON", "payload": {"a": 1}}
        connector.set_config_otau("a0002", offer)
        first = {"version": "9.0.0", "status": "INSTALL_STEP", "message": lines[0]}
        await eventually(lambda: first in otau_in(connector, "a0002"), 20, "the first line")
        connector.faults.fail_next(1, path="/onep:v1/stack/alias")
        await wait_status(connector, "a0002", "9.0.0", OK, timeout=30)
        await asyncio.sleep(0.3)
        session = fleet.session("gw")
    assert connector.faults.fail_count == 0
    assert session.outbox.found == 0
    again = [r for r in connector.reports("a0002", "otau_in") if r.via == "http-record"]
    assert len(again) == 1, again  # the refused write, sent again with its original time
    assert_delivered_once(tmp_path / "data" / "otatui.db", connector, "gw", "a0002")


@pytest.mark.parametrize(("protocol", "identity"), [("mqtt", "a0001"), ("http", "a0002")])
async def test_a_store_that_cannot_record_a_confirmation_holds_it_and_resumes(
    tmp_path: Path, connector: Connector, protocol: str, identity: str
) -> None:
    """Disk full while recording a delivery: the report is not sent again, nothing else is sent,
    one error says so, and once the store works the update goes on, each report sent once."""
    device = agent("gw", identity, protocol, tmp_path / "records")
    async with running_fleet(site_config(tmp_path, connector, [device])) as (fleet, seen):
        store = fleet.store
        assert store is not None
        await wait_status(connector, identity, "1.0.0", "INSTALLED_VERSION")
        # (The connector has it the moment it arrives; its confirmation comes a moment later.)
        await eventually(lambda: store.count_pending("gw") == 0, 10, "the boot report confirmed")
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


@pytest.mark.parametrize(("protocol", "identity"), [("mqtt", "a0001"), ("http", "a0002")])
async def test_a_report_a_killed_run_left_in_doubt_is_found_on_the_connector_at_start(
    tmp_path: Path, connector: Connector, protocol: str, identity: str
) -> None:
    """A previous run wrote a report, the connector stored it, and the run died before the
    confirmation: the next run reads it back instead of sending it again."""
    config = site_config(tmp_path, connector, [agent("gw", identity, protocol, tmp_path / "r")])
    async with running_fleet(config) as (fleet, _seen):
        store = fleet.store
        assert store is not None
        await wait_status(connector, identity, "1.0.0", OK)
        await eventually(lambda: store.count_pending("gw") == 0, 10, "the boot report confirmed")
    # What the killed run left: a report in the outbox that the connector has already.
    left = '{"version":"1.0.0","status":"INSTALL_STEP","message":"left by a killed run"}'
    with Store.open(tmp_path / "data" / "otatui.db") as store:
        store.record_step(
            device="gw",
            reports=[PendingReport(resource="otau_in", value=left, source=protocol)],
            snapshot=None,
        )
    connector.state.device_write(connector.device(identity), [("otau_in", left)], via=protocol)
    async with running_fleet(config) as (fleet, _seen):
        await eventually(lambda: len(otau_in(connector, identity)) == 3, 10, "the boot report")
        await asyncio.sleep(0.3)
        assert fleet.session("gw").outbox.found == 1
    statuses = [(r["status"], r["message"]) for r in otau_in(connector, identity)]
    assert statuses == [
        ("INSTALLED_VERSION", ""),
        ("INSTALL_STEP", "left by a killed run"),  # once
        ("INSTALLED_VERSION", ""),
    ]
    with StoreReader.open_readonly(tmp_path / "data" / "otatui.db") as reader:
        assert reader.count_pending("gw") == 0
