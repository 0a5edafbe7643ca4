"""The update engine in-process against the local connector: agents over MQTT and HTTP, a
monitor, the outbox across an outage, cancel and retry."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from engine_helpers import (
    TOKENS,
    ExternalServer,
    agent,
    sha,
    statuses,
    wait_status,
    write_config,
)
from wait_helpers import eventually

from otatui.config import load_config
from otatui.connector import Connector
from otatui.engine.events import Event, EventBus
from otatui.engine.fleet import Fleet
from otatui.store import Store

FINAL_OK = "INSTALLED_VERSION"


@pytest.fixture
async def connector(tmp_path: Path):
    c = Connector(devices=[(i, t) for i, t in TOKENS.items()])
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


@pytest.fixture
def external(tmp_path: Path):
    root = tmp_path / "external"
    root.mkdir()
    server = ExternalServer(root)
    try:
        yield server
    finally:
        server.close()


async def test_agents_over_both_protocols_install_a_url_list(
    tmp_path: Path, connector: Connector, external: ExternalServer
) -> None:
    firmware = b"firmware-" * 50_000
    extra = b"extra data" * 1000
    connector.add_content("fw_2.0.0.bin", firmware)
    (external.root / "extra.tar").write_bytes(extra)
    records = tmp_path / "records"
    cfg = write_config(
        tmp_path / "site.toml",
        connector,
        [
            agent("mqtt-agent", "a0001", "mqtt", records / "mqtt"),
            agent("http-agent", "a0002", "http", records / "http"),
        ],
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
    )
    config = load_config(cfg)
    seen: list[Event] = []
    bus = EventBus()
    bus.subscribe(seen.append)
    manifest = json.dumps(
        {
            "version": "2.0.0",
            "name": "Firmware",
            "type": "URL_LIST",
            "payload": ["fw_2.0.0.bin", external.url("extra.tar") + f"#sha256={sha(extra)}"],
        }
    )
    async with Fleet(config, bus=bus, request_timeout_ms=5_000) as fleet:
        fleet.start()
        for identity in ("a0001", "a0002"):
            await wait_status(connector, identity, "1.0.0", FINAL_OK)  # boot report
            connector.set_config_otau(identity, manifest)
        for identity in ("a0001", "a0002"):
            await wait_status(connector, identity, "2.0.0", FINAL_OK)
            await asyncio.wait_for(connector.wait_for_ack(identity), 10)
    for kind in ("mqtt", "http"):
        got = json.loads((records / kind / "2.0.0.json").read_text())
        assert got["files"] == {"fw_2.0.0.bin": sha(firmware), "extra.tar": sha(extra)}
        assert got["manifest"] == manifest  # byte-identical manifest for the hook
    for identity in ("a0001", "a0002"):
        flow = [s for v, s in statuses(connector, identity) if v == "2.0.0"]
        assert flow[0] == "INIT" and flow[-1] == FINAL_OK
        assert "DOWNLOAD_SUCCESS" in flow and "INSTALL_SUCCESS" in flow
        acks = [r for r in connector.reports(identity, "config_otau")]
        assert acks and all(r.value == manifest for r in acks)  # identical echo
    # The token never went to the external host.
    assert external.seen_headers
    for headers in external.seen_headers:
        assert not any(t in json.dumps(headers) for t in TOKENS.values())
        assert "X-Exosite-CIK" not in headers
    # Downloaded once: the second device was served from the cache.
    assert len(external.seen_headers) == 1


async def test_failed_install_reports_install_error_then_retry_and_cancel(
    tmp_path: Path, connector: Connector
) -> None:
    connector.add_content("fw_bad.bin", b"x" * 1000)
    records = tmp_path / "records"
    cfg = write_config(
        tmp_path / "site.toml",
        connector,
        [agent("gw", "a0001", "mqtt", records)],
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
    )
    async with Fleet(load_config(cfg), request_timeout_ms=5_000) as fleet:
        fleet.start()
        await wait_status(connector, "a0001", "1.0.0", FINAL_OK)
        bad = {"version": "3.0.0-bad", "name": "Bad", "type": "FILE", "payload": "fw_bad.bin"}
        connector.set_config_otau("a0001", bad)
        await wait_status(connector, "a0001", "3.0.0-bad", "INSTALL_ERROR")
        errors = [
            json.loads(r.value)
            for r in connector.reports("a0001", "otau_in")
            if json.loads(r.value)["status"] == "INSTALL_ERROR"
        ]
        assert errors[-1]["message"] == "flash verify failed"
        count = len(statuses(connector, "a0001"))
        fleet.retry("gw")
        await asyncio.sleep(0.2)

        async def second_error() -> None:
            while statuses(connector, "a0001")[count:].count(("3.0.0-bad", "INSTALL_ERROR")) < 1:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(second_error(), 20)
        assert ("3.0.0-bad", "INIT") in statuses(connector, "a0001")[count:]


async def test_bad_manifest_is_answered_with_test_error_and_the_session_goes_on(
    tmp_path: Path, connector: Connector
) -> None:
    connector.add_content("ok.bin", b"ok")
    cfg = write_config(
        tmp_path / "site.toml",
        connector,
        [agent("gw", "a0002", "http", tmp_path / "rec")],
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
    )
    async with Fleet(load_config(cfg), request_timeout_ms=5_000) as fleet:
        fleet.start()
        await wait_status(connector, "a0002", "1.0.0", FINAL_OK)
        connector.set_config_otau(
            "a0002", '{"version":"9","name":"x","type":"FILE","payload":"ftp://evil/x"}'
        )
        await wait_status(connector, "a0002", "9", "TEST_ERROR")
        connector.set_config_otau(
            "a0002", {"version": "4.0.0", "name": "ok", "type": "FILE", "payload": "ok.bin"}
        )
        await wait_status(connector, "a0002", "4.0.0", FINAL_OK)


async def test_outbox_keeps_reports_while_the_connector_is_down_and_sends_them_in_order(
    tmp_path: Path, connector: Connector
) -> None:
    cfg = write_config(
        tmp_path / "site.toml",
        connector,
        [agent("gw", "a0001", "mqtt", tmp_path / "rec")],
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
    )
    config = load_config(cfg)
    async with Fleet(config, request_timeout_ms=5_000) as fleet:
        fleet.start()
        await wait_status(connector, "a0001", "1.0.0", FINAL_OK)
        json_manifest = {"version": "5.0.0", "name": "cfg", "type": "JSON", "payload": {"a": 1}}
        connector.set_config_otau("a0001", json_manifest)
        await wait_status(connector, "a0001", "5.0.0", FINAL_OK)
        store = fleet.store
        assert store is not None  # the connector has the report before otatui has its PUBACK:
        await eventually(lambda: store.count_pending("gw") == 0, 10, "the last report confirmed")
    # otatui starts twice while the connector is unreachable: both boot reports wait, in order.
    mqtt_port, http_port = connector.ports["mqtt"], connector.ports["http"]
    await connector.stop()
    for _ in range(2):
        async with Fleet(config, request_timeout_ms=5_000, backlog_age=0.5) as fleet:
            fleet.start()
            await asyncio.sleep(0.8)
    store = Store.open_readonly(tmp_path / "data" / "otatui.db")
    backlog = store.pending("gw")
    store.close()
    assert len(backlog) == 2 and backlog[0].id < backlog[1].id
    # The connector is back (a new process on the same ports): the backlog goes out by itself,
    # in order, once each, at the times the reports were made; then the new boot report.
    back = Connector(devices=list(TOKENS.items()), mqtt_port=mqtt_port, http_port=http_port)
    await back.start()
    try:
        async with Fleet(config, request_timeout_ms=5_000, backlog_age=0.5) as fleet:
            fleet.start()

            async def delivered() -> None:
                while len(back.reports("a0001", "otau_in")) < 3:
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(delivered(), 30)
            await asyncio.sleep(0.5)
        got = back.reports("a0001", "otau_in")
        assert len(got) == 3
        assert [r.value for r in got[:2]] == [b.value for b in backlog]
        for report, item in zip(got[:2], backlog, strict=True):
            assert abs(report.timestamp - item.produced_at) < 0.001  # original time
            assert report.via == "mqtt-batch"
        assert json.loads(got[2].value)["status"] == FINAL_OK
        store = Store.open_readonly(tmp_path / "data" / "otatui.db")
        assert store.count_pending("gw") == 0
        store.close()
    finally:
        await back.stop()


async def test_monitor_shows_both_resources_and_never_writes(
    tmp_path: Path, connector: Connector
) -> None:
    import httpx

    from otatui.engine.events import ManifestReceived, ReportObserved

    cfg = write_config(
        tmp_path / "site.toml",
        connector,
        [
            {
                "name": "watch",
                "identity": "a0003",
                "token": TOKENS["a0003"],
                "protocol": "http",
                "role": "monitor",
            }
        ],
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
    )
    config = load_config(cfg)
    seen: list[Event] = []
    bus = EventBus()
    bus.subscribe(seen.append)
    manifest = {"version": "7.0.0", "name": "x", "type": "JSON", "payload": {}}
    connector.set_config_otau("a0003", manifest)
    async with Fleet(config, bus=bus, request_timeout_ms=5_000) as fleet:
        fleet.start()
        assert fleet.devices["watch"].session is None

        async def until(predicate) -> None:  # type: ignore[no-untyped-def]
            while not any(predicate(e) for e in seen):
                await asyncio.sleep(0.05)

        await asyncio.wait_for(
            until(lambda e: isinstance(e, ManifestReceived) and e.version == "7.0.0"), 10
        )
        # The device itself (not otatui) reports over HTTP; the monitor sees it.
        report = '{"version":"7.0.0","status":"INSTALL","message":"flashing"}'
        async with httpx.AsyncClient() as client:
            resp = await client.post(
                f"{connector.http_url}/onep:v1/stack/alias",
                data={"otau_in": report},
                headers={"X-Exosite-CIK": TOKENS["a0003"]},
            )
            assert resp.status_code == 204
        await asyncio.wait_for(
            until(lambda e: isinstance(e, ReportObserved) and e.status == "INSTALL"), 15
        )
    # Only the device's own write reached the connector: the monitor wrote nothing.
    assert [r.value for r in connector.reports("a0003")] == [report]
    assert not connector.resource("a0003", "config_otau").acked  # type: ignore[union-attr]


class FakeLink:
    """A bridged device behind a local link: reports its own progress, or hangs until cancelled."""

    source = "serial"

    def __init__(self, hang: bool = False) -> None:
        self.hang = hang
        self.requests: list[object] = []
        self.cancelled = asyncio.Event()

    async def install(self, request):  # type: ignore[no-untyped-def]
        from otatui.links.link import DeviceReport, Finished, Step
        from otatui.otau.status import Status, StatusReport

        self.requests.append(request)
        version = request.manifest.version
        if self.hang:
            yield Step("pushing 1 file")
            try:
                await asyncio.Event().wait()
            finally:
                self.cancelled.set()
        yield DeviceReport(StatusReport(version, Status.INSTALL_STEP, "writing flash 50%"))
        yield DeviceReport(StatusReport(version, Status.INSTALLED_VERSION, ""))
        yield Finished(True, "device rebooted")


@pytest.mark.parametrize("protocol", ["mqtt", "http"])
async def test_bridge_relays_a_linked_device_and_labels_its_reports(
    tmp_path: Path, connector: Connector, protocol: str
) -> None:
    from otatui.store import Store

    connector.add_content("sensor.bin", b"sensor firmware")
    device = {
        "name": "sensor-1", "identity": "a0001", "token": TOKENS["a0001"],
        "protocol": protocol, "role": "bridge", "installed_version": "1.0.0",
        "link": "serial:/dev/ttyUSB0?baud=115200",
    }  # fmt: skip
    cfg = write_config(
        tmp_path / "site.toml",
        connector,
        [device],
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
    )
    link = FakeLink()
    async with Fleet(
        load_config(cfg), link_factory=lambda d: link, request_timeout_ms=5_000
    ) as fleet:
        fleet.start()
        await wait_status(connector, "a0001", "1.0.0", FINAL_OK)
        connector.set_config_otau(
            "a0001", {"version": "2.1.0", "name": "s", "type": "FILE", "payload": "sensor.bin"}
        )
        await wait_status(connector, "a0001", "2.1.0", FINAL_OK)
    assert len(link.requests) == 1
    reports = [r for r in connector.reports("a0001", "otau_in") if '"2.1.0"' in r.value]
    assert any("writing flash 50%" in r.value for r in reports)
    store = Store.open(tmp_path / "data" / "otatui.db")
    rows = [
        (r.status, r.source)
        for r in store.history(device="sensor-1", resource="otau_in")
        if r.version == "2.1.0"
    ]
    store.close()
    assert ("DOWNLOAD_SUCCESS", protocol) in rows  # what otatui did itself
    assert ("INSTALL_STEP", "serial") in rows  # what the device reported through the link


async def test_cancel_during_install_reports_aborted_and_stops_the_link(
    tmp_path: Path, connector: Connector
) -> None:
    connector.add_content("sensor.bin", b"sensor firmware")
    device = {
        "name": "sensor-1", "identity": "a0001", "token": TOKENS["a0001"],
        "protocol": "mqtt", "role": "bridge", "installed_version": "1.0.0", "link": "lan",
    }  # fmt: skip
    cfg = write_config(
        tmp_path / "site.toml",
        connector,
        [device],
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
    )
    link = FakeLink(hang=True)
    async with Fleet(
        load_config(cfg), link_factory=lambda d: link, request_timeout_ms=5_000
    ) as fleet:
        fleet.start()
        await wait_status(connector, "a0001", "1.0.0", FINAL_OK)
        connector.set_config_otau(
            "a0001", {"version": "2.2.0", "name": "s", "type": "FILE", "payload": "sensor.bin"}
        )
        # The push's first step: the link is inside its install (INSTALL alone is reported
        # before the install task first runs, and a task cancelled before it runs never
        # reaches the link).
        await wait_status(connector, "a0001", "2.2.0", "INSTALL_STEP")
        fleet.cancel("sensor-1")
        await wait_status(connector, "a0001", "2.2.0", "INSTALL_ABORTED")
        await asyncio.wait_for(link.cancelled.wait(), 5)
        assert ("2.2.0", FINAL_OK) not in statuses(connector, "a0001")
        # The downloaded file stays in the cache for a later retry.
        assert fleet.downloader is not None
        assert list((tmp_path / "cache" / "sha256").iterdir())
