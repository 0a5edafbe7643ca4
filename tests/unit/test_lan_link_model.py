"""`LanLink` against the local connector's model, with the device played by the test (no sockets):
what the link sets, what it relays, when it ends, what it leaves behind."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from otatui.connector import Connector, Device
from otatui.links.lan import LanLink
from otatui.links.lan_content import CONTENT_TAG, depot
from otatui.links.link import (
    DeviceReport,
    Finished,
    InstallEvent,
    InstallRequest,
    Link,
    LinkStatus,
)
from otatui.otau.manifest import Manifest, parse_manifest
from otatui.otau.status import Status, StatusReport

ID = "a0001"
FW = b"firmware " * 1000
EXTRA = b"extra" * 100


@pytest.fixture
async def connector() -> AsyncIterator[Connector]:
    c = Connector(http_port=None, mqtt_port=None)  # the model only: no listener
    try:
        yield c
    finally:
        await c.stop()


def request_for(tmp_path: Path, version: str = "2.0.0", fw: bytes = FW) -> InstallRequest:
    workdir = tmp_path / f"job-{version}"
    workdir.mkdir(parents=True)
    (workdir / "fw_2.0.0.bin").write_bytes(fw)
    (workdir / "extra.tar").write_bytes(EXTRA)
    sha = hashlib.sha256(EXTRA).hexdigest()
    raw = json.dumps(
        {
            "version": version,
            "name": "Firmware",
            "type": "URL_LIST",
            "payload": ["fw_2.0.0.bin", f"https://files.example.com/extra.tar#sha256={sha}"],
        }
    )
    manifest = parse_manifest(raw)
    assert isinstance(manifest, Manifest)
    return InstallRequest(
        manifest=manifest,
        files=(workdir / "fw_2.0.0.bin", workdir / "extra.tar"),
        workdir=workdir,
    )


class Run:
    """The link's install() running in a task; its events in a queue."""

    def __init__(self, link: LanLink, request: InstallRequest) -> None:
        self.events: asyncio.Queue[InstallEvent] = asyncio.Queue()
        self.seen: list[InstallEvent] = []
        self.gen = link.install(request)
        self.task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        async with contextlib.aclosing(self.gen) as events:
            async for event in events:
                await self.events.put(event)

    async def until(
        self, predicate: Callable[[InstallEvent], bool], within: float = 5.0
    ) -> InstallEvent:
        async with asyncio.timeout(within):
            while True:
                event = await self.events.get()
                self.seen.append(event)
                if predicate(event):
                    return event

    async def finished(self, within: float = 5.0) -> Finished:
        event = await self.until(lambda e: isinstance(e, Finished), within)
        assert isinstance(event, Finished)
        await asyncio.wait_for(self.task, 5)
        return event

    async def cancel(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def offered(connector: Connector) -> str:
    resource = connector.resource(ID, "config_otau")
    assert resource is not None and resource.set_value is not None
    return resource.set_value


def report(
    device: Device, connector: Connector, version: str, status: Status, msg: str = ""
) -> None:
    value = StatusReport(version, status, msg).to_json()
    connector.state.device_write(device, [("otau_in", value)], via="http")


def device_reports(events: list[InstallEvent]) -> list[tuple[str, str]]:
    return [
        (e.report.status.value, e.report.message) for e in events if isinstance(e, DeviceReport)
    ]


def is_waiting_for_connect(e: InstallEvent) -> bool:
    return isinstance(e, LinkStatus) and e.state == "waiting" and "to connect" in e.detail


def test_lan_link_is_a_link(connector: Connector) -> None:
    link = LanLink(connector, ID)
    assert isinstance(link, Link)
    assert link.source == "lan"
    with pytest.raises(ValueError, match="identity"):
        LanLink(connector, "")
    with pytest.raises(ValueError, match="connect_timeout"):
        LanLink(connector, ID, connect_timeout=0)


async def test_push_offers_pinned_local_content_and_relays_every_report_once_in_order(
    tmp_path: Path, connector: Connector
) -> None:
    run = Run(LanLink(connector, ID), request_for(tmp_path))
    status = await run.until(is_waiting_for_connect)
    assert isinstance(status, LinkStatus)
    assert (
        status.detail == f"waiting for {ID} to connect to the local connector at (no HTTP listener)"
    )
    # The identity is whitelisted, not provisioned: the device activates itself.
    assert connector.device(ID).token is None
    text = offered(connector)
    manifest = parse_manifest(text)
    assert isinstance(manifest, Manifest) and manifest.version == "2.0.0"
    for item, data in zip(manifest.items, (FW, EXTRA), strict=True):
        assert item.content_id is not None and item.sha256 == hashlib.sha256(data).hexdigest()
        content = connector.content_item(item.content_id)
        assert content is not None and content.path.read_bytes() == data
        assert content.tags[CONTENT_TAG] == "lan"

    token = connector.state.activate(ID)  # the device activates: it is seen
    device = connector.state.authenticate(token)
    assert device is not None
    await run.until(lambda e: isinstance(e, LinkStatus) and e.state == "connected")
    report(device, connector, "1.0.0", Status.INSTALLED_VERSION)  # boot report: not relayed
    connector.state.device_write(device, [("otau_in", "garbage")], via="http")  # shown only
    connector.state.device_write(device, [("config_otau", text)], via="http")  # the ack
    flow = [
        (Status.INIT, "starting"),
        (Status.TEST, "checks"),
        (Status.TEST_SUCCESS, ""),
        (Status.DOWNLOAD, "2 file(s)"),
        *[(Status.DOWNLOAD_STEP, f"step {i}") for i in range(20)],
        (Status.DOWNLOAD_SUCCESS, ""),
        (Status.INSTALL, "installing"),
        (Status.INSTALL_SUCCESS, "done"),
        (Status.INSTALLED_VERSION, ""),
    ]
    for status_, msg in flow:  # a burst: all written before the link runs again
        report(device, connector, "2.0.0", status_, msg)
    finished = await run.finished()
    assert finished == Finished(True, f"{ID} installed 2.0.0")
    assert device_reports(run.seen) == [(s.value, m) for s, m in flow]
    states = [e.state for e in run.seen if isinstance(e, LinkStatus)]
    assert states.index("transferring") < states.index("installing") < states.index("closed")
    assert any(
        isinstance(e, LinkStatus) and "INSTALLED_VERSION 1.0.0" in e.detail for e in run.seen
    )
    assert any(
        isinstance(e, LinkStatus) and "otau_in that is not a report" in e.detail for e in run.seen
    )
    assert offered(connector) == text  # success: the offer stays


async def test_device_error_ends_the_push_with_its_message(
    tmp_path: Path, connector: Connector
) -> None:
    connector.add_device(ID)
    local = connector.state.activate(ID)  # known already, with a token: the link keeps it
    run = Run(LanLink(connector, ID), request_for(tmp_path))
    await run.until(is_waiting_for_connect)
    assert connector.device(ID).token == local
    device = connector.state.authenticate(local)
    assert device is not None
    connector.state.device_write(device, [("config_otau", offered(connector))], via="http")
    report(device, connector, "2.0.0", Status.INIT)
    report(device, connector, "2.0.0", Status.INSTALL_ERROR, "flash write error")
    report(device, connector, "2.0.0", Status.INSTALLED_VERSION)  # after the end: not read
    assert await run.finished() == Finished(False, "flash write error")
    assert device_reports(run.seen) == [("INIT", ""), ("INSTALL_ERROR", "flash write error")]


async def test_device_that_never_connects_fails_in_bounded_time_and_the_offer_is_withdrawn(
    tmp_path: Path, connector: Connector
) -> None:
    run = Run(LanLink(connector, ID, connect_timeout=0.3), request_for(tmp_path))
    await run.until(is_waiting_for_connect)
    finished = await run.finished(within=3)
    assert finished == Finished(False, f"{ID} did not connect to the local connector within 0.3 s")
    assert offered(connector) == ""


async def test_connected_device_that_never_acknowledges_fails(
    tmp_path: Path, connector: Connector
) -> None:
    connector.add_device(ID)
    token = connector.state.activate(ID)
    run = Run(LanLink(connector, ID, ack_timeout=0.3), request_for(tmp_path))
    await run.until(is_waiting_for_connect)
    connector.state.authenticate(token)
    finished = await run.finished(within=3)
    assert finished == Finished(False, f"{ID} did not acknowledge version 2.0.0 within 0.3 s")
    assert offered(connector) == ""


async def test_silent_device_after_its_ack_fails_after_report_timeout(
    tmp_path: Path, connector: Connector
) -> None:
    connector.add_device(ID)
    token = connector.state.activate(ID)
    run = Run(LanLink(connector, ID, report_timeout=0.3), request_for(tmp_path))
    await run.until(is_waiting_for_connect)
    device = connector.state.authenticate(token)
    assert device is not None
    connector.state.device_write(device, [("config_otau", offered(connector))], via="http")
    report(device, connector, "2.0.0", Status.INIT)
    finished = await run.finished(within=3)
    assert finished == Finished(False, f"{ID} sent no report for 0.3 s")


async def test_cancel_withdraws_the_offer(tmp_path: Path, connector: Connector) -> None:
    run = Run(LanLink(connector, ID), request_for(tmp_path))
    await run.until(is_waiting_for_connect)
    assert offered(connector) != ""
    await run.cancel()
    assert offered(connector) == ""
    assert not any(isinstance(e, Finished) for e in run.seen)


async def test_repeated_push_reuses_content_and_a_new_one_prunes_the_old(
    tmp_path: Path, connector: Connector
) -> None:
    foreign = connector.add_content("someone-elses.bin", b"not ours")
    first = Run(LanLink(connector, ID, connect_timeout=0.2), request_for(tmp_path, "2.0.0"))
    await first.finished()
    ids_first = {c.id for c in connector.contents()} - {foreign.id}
    assert len(ids_first) == 4  # each file under its id and under its pinned item
    assert len({c.path for c in connector.contents()} - {foreign.path}) == 2
    updated = {c.id: c.updated for c in connector.contents()}
    again = Run(LanLink(connector, ID, connect_timeout=0.2), request_for(tmp_path / "again"))
    await again.finished()
    # The cancelled/failed offer was withdrawn, but the same files get the same ids again.
    assert {c.id for c in connector.contents()} - {foreign.id} == ids_first
    assert {c.id: c.updated for c in connector.contents()} == updated  # not placed again
    newer = request_for(tmp_path / "newer", "3.0.0", fw=b"new firmware")
    third = Run(LanLink(connector, ID, connect_timeout=0.2), newer)
    await third.until(is_waiting_for_connect)
    ids_now = {c.id for c in connector.contents()}
    assert foreign.id in ids_now  # never touched
    fw_first = next(i for i in ids_first if i.startswith("fw_2.0.0-") and "#" not in i)
    assert not any(i.startswith(fw_first) for i in ids_now)  # named by no manifest now
    assert sorted(p.name for p in depot(connector).iterdir()) == sorted(
        {c.path.name for c in connector.contents() if c.id != foreign.id}
    )
    await third.finished()


async def test_device_removed_from_the_connector_ends_the_push(
    tmp_path: Path, connector: Connector
) -> None:
    run = Run(LanLink(connector, ID), request_for(tmp_path))
    await run.until(is_waiting_for_connect)
    connector.remove_device(ID)
    finished = await run.finished()
    assert finished == Finished(False, f"{ID} was removed from the local connector")


async def test_mqtt_session_coming_and_going_is_reported(
    tmp_path: Path, connector: Connector
) -> None:
    connector.add_device(ID)
    token = connector.state.activate(ID)
    run = Run(LanLink(connector, ID), request_for(tmp_path))
    await run.until(is_waiting_for_connect)
    with connector.state.pushing(ID, lambda _resource: None):  # what an MQTT session holds
        connector.state.authenticate(token)
        event = await run.until(lambda e: isinstance(e, LinkStatus) and e.state == "connected")
        assert isinstance(event, LinkStatus)
        assert event.detail == f"{ID} connected to the local connector over MQTT"
    lost = await run.until(lambda e: isinstance(e, LinkStatus) and e.state == "lost")
    assert isinstance(lost, LinkStatus)
    assert lost.detail == f"{ID} disconnected from the local connector (MQTT)"
    with connector.state.pushing(ID, lambda _resource: None):
        await run.until(lambda e: isinstance(e, LinkStatus) and e.detail.endswith("over MQTT"))
    await run.cancel()


async def test_url_on_a_wildcard_host_names_this_machine(tmp_path: Path) -> None:
    c = Connector(host="0.0.0.0", http_port=None, mqtt_port=None)
    try:
        c.ports.update(http=8080, mqtt=1883)  # as if listening on every interface
        link = LanLink(c, ID)
        assert link.url == f"http://{socket.gethostname()}:8080"
        run = Run(link, request_for(tmp_path))
        opening = await run.until(lambda e: isinstance(e, LinkStatus))
        assert isinstance(opening, LinkStatus) and opening.state == "opening"
        assert opening.detail.endswith(
            f"at http://{socket.gethostname()}:8080 (MQTT mqtt://{socket.gethostname()}:1883)"
        )
        await run.cancel()
    finally:
        c.ports.clear()
        await c.stop()


async def test_each_device_report_carries_the_time_the_local_connector_recorded(
    tmp_path: Path, connector: Connector
) -> None:
    run = Run(LanLink(connector, ID), request_for(tmp_path))
    await run.until(is_waiting_for_connect)
    device = connector.state.authenticate(connector.state.activate(ID))
    assert device is not None
    connector.state.device_write(device, [("config_otau", offered(connector))], via="http")
    value = StatusReport("2.0.0", Status.INIT).to_json()  # a timestamped batch/record write
    connector.state.device_write(device, [("otau_in", value)], via="mqtt-batch", timestamp=1234.5)
    report(device, connector, "2.0.0", Status.TEST)  # a plain write: the receive time
    report(device, connector, "2.0.0", Status.INSTALLED_VERSION)
    assert (await run.finished()).ok
    times = [e.time for e in run.seen if isinstance(e, DeviceReport)]
    recorded = [r.timestamp for r in connector.reports(ID, "otau_in")]
    assert times == recorded and times[0] == 1234.5 and times[1] is not None and times[1] > 1234.5
