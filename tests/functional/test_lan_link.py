"""LAN push end to end over real sockets on 127.0.0.1: `LanLink` offers an update on the local
connector and the simulated device (`LanDevice`, MQTT or HTTP) activates, acknowledges,
downloads, installs and reports."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from urllib.parse import quote_plus

import httpx
import pytest
from engine_helpers import sha
from lan_helpers import (
    CLOUD_TOKEN,
    ID,
    files_containing,
    firmware_request,
    lan_device,
    local_connector,
    otau_reports,
    running,
)
from link_helpers import collect, finished

from otatui.links.lan import LanLink
from otatui.links.link import DeviceReport, Finished, LinkStatus
from otatui.otau.status import Status

FW = b"\x7fELF firmware " * 40_000
EXTRA = b"extra data " * 2_000


@pytest.mark.parametrize("protocol", ["mqtt", "http"])
async def test_lan_push_installs_and_relays_every_report_once_in_order(
    tmp_path: Path, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    data_dir = tmp_path / "local-connector"
    async with local_connector(data_dir) as connector:
        device = lan_device(connector, tmp_path / "device", protocol)
        link = LanLink(connector, ID, connect_timeout=20, ack_timeout=10, report_timeout=20)
        request = firmware_request(tmp_path / "job", "2.0.0", FW, EXTRA)
        async with running(device):
            events = await collect(link, request)
        assert finished(events) == Finished(True, f"{ID} installed 2.0.0")

        # What the device wrote for 2.0.0 is exactly what was relayed: each once, in order.
        relayed = [e.report for e in events if isinstance(e, DeviceReport)]
        on_connector = [r for r in otau_reports(connector) if r.version == "2.0.0"]
        assert relayed == on_connector
        statuses = [r.status for r in relayed]
        assert statuses[0] is Status.INIT and statuses[-1] is Status.INSTALLED_VERSION
        for needed in (Status.DOWNLOAD_SUCCESS, Status.INSTALL_SUCCESS):
            assert needed in statuses
        # The boot report of the old version was not relayed as the device's progress.
        assert any(r.version == "1.0.0" for r in otau_reports(connector))
        states = [e.state for e in events if isinstance(e, LinkStatus)]
        assert states[:3] == ["opening", "waiting", "connected"]
        assert "transferring" in states and "installing" in states and states[-1] == "closed"

        # The device acknowledged the identical value and installed the verified files.
        offered = connector.resource(ID, "config_otau")
        assert offered is not None and offered.acked
        assert device.installed_version == "2.0.0"
        installed = tmp_path / "device" / "installed" / "2.0.0"
        got = {p.name: sha(p.read_bytes()) for p in installed.iterdir()}
        assert sorted(got.values()) == sorted([sha(FW), sha(EXTRA)])
        assert (tmp_path / "device" / "version").read_text().strip() == "2.0.0"

        # The device got a LOCAL token by activating; the cloud token went nowhere near it.
        assert device.token is not None and device.token != CLOUD_TOKEN
        assert connector.device(ID).token == device.token
        values = [r.value for r in connector.reports(ID)] + [offered.value]
        assert not any(CLOUD_TOKEN in v for v in values)
    # After stop() everything the local connector keeps is on disk: grep it all.
    assert files_containing(data_dir, CLOUD_TOKEN) == []
    assert files_containing(tmp_path / "device", CLOUD_TOKEN) == []
    assert files_containing(data_dir, device.token)  # the local token is there (sanity)
    assert CLOUD_TOKEN not in caplog.text
    assert device.token not in caplog.text


@pytest.mark.parametrize(
    ("fail", "status", "message"),
    [
        ("test", Status.TEST_ERROR, "simulated test failure: the device refuses this update"),
        (
            "download",
            Status.DOWNLOAD_ERROR,
            "simulated download failure: the link to the server broke",
        ),
        ("install", Status.INSTALL_ERROR, "simulated install failure: flash write error"),
    ],
)
async def test_failing_device_fails_the_push_with_its_message(
    tmp_path: Path, fail: str, status: Status, message: str
) -> None:
    async with local_connector() as connector:
        device = lan_device(connector, tmp_path / "device", "http", fail=fail)
        link = LanLink(connector, ID, connect_timeout=20, ack_timeout=10, report_timeout=20)
        request = firmware_request(tmp_path / "job", "2.0.0", FW, EXTRA)
        async with running(device):
            events = await collect(link, request)
        assert finished(events) == Finished(False, message)
        last = [e for e in events if isinstance(e, DeviceReport)][-1].report
        assert (last.status, last.message) == (status, message)
        assert device.installed_version == "1.0.0"
        assert not (tmp_path / "device" / "version").exists()


async def test_device_that_never_connects_is_a_bounded_error(tmp_path: Path) -> None:
    async with local_connector() as connector:
        link = LanLink(connector, ID, connect_timeout=0.5)
        request = firmware_request(tmp_path / "job", "2.0.0", FW, EXTRA)
        loop = asyncio.get_running_loop()
        started = loop.time()
        events = await collect(link, request, within=10)
        assert loop.time() - started < 5
        assert finished(events) == Finished(
            False, f"{ID} did not connect to the local connector within 0.5 s"
        )
        waiting = [e for e in events if isinstance(e, LinkStatus) and e.state == "waiting"]
        assert waiting[0].detail == (
            f"waiting for {ID} to connect to the local connector at {connector.http_url}"
        )
        # Withdrawn: a device that turns up later does not install behind our back.
        resource = connector.resource(ID, "config_otau")
        assert resource is not None and resource.set_value == ""


@pytest.mark.parametrize("protocol", ["mqtt", "http"])
async def test_cancel_mid_way_aborts_the_device(tmp_path: Path, protocol: str) -> None:
    async with local_connector() as connector:
        device = lan_device(connector, tmp_path / "device", protocol, step_delay=0.5)
        link = LanLink(connector, ID, connect_timeout=20, ack_timeout=10, report_timeout=20)
        request = firmware_request(tmp_path / "job", "2.0.0", FW, EXTRA)
        async with running(device):

            def started(event: object) -> bool:
                return isinstance(event, DeviceReport) and event.report.status is Status.TEST

            events = await collect(link, request, stop=started)
            assert not any(isinstance(e, Finished) for e in events)
            resource = connector.resource(ID, "config_otau")
            assert resource is not None and resource.set_value == ""

            async def aborted() -> None:
                while not any(
                    r.version == "2.0.0" and r.status is Status.INSTALL_ABORTED
                    for r in otau_reports(connector)
                ):
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(aborted(), 10)
            await asyncio.wait_for(connector.wait_for_ack(ID), 10)  # the empty value, echoed
            await asyncio.sleep(1.2)  # longer than the steps left: nothing else happens
        assert device.installed_version == "1.0.0"
        flow = [r.status for r in otau_reports(connector) if r.version == "2.0.0"]
        assert flow[-1] is Status.INSTALL_ABORTED
        assert Status.INSTALL not in flow


async def test_device_started_before_the_push_waits_for_its_whitelisting(tmp_path: Path) -> None:
    """The device boots first (its identity unknown to the local connector): it keeps trying
    to activate and gets its token once the link whitelists it."""
    async with local_connector() as connector:
        device = lan_device(connector, tmp_path / "device", "mqtt", activate_timeout=0.5)
        link = LanLink(connector, ID, connect_timeout=20, ack_timeout=10, report_timeout=20)
        request = firmware_request(tmp_path / "job", "2.0.0", FW, EXTRA)
        async with running(device):
            await asyncio.sleep(0.7)  # at least one refused attempt
            assert device.token is None
            events = await collect(link, request)
        assert finished(events).ok


async def test_a_device_that_ignores_the_pin_still_downloads(tmp_path: Path) -> None:
    """The offered items are `<content id>#sha256=<hex>`. A device that knows no pin and asks for
    the whole item (percent-encoded), or whose client drops the fragment, gets the file too."""
    async with local_connector() as connector:
        link = LanLink(connector, ID, connect_timeout=20)
        request = firmware_request(tmp_path / "job", "2.0.0", FW, EXTRA)

        def offered(event: object) -> bool:
            return isinstance(event, LinkStatus) and event.state == "waiting"

        events = await collect(link, request, stop=offered)
        assert not any(isinstance(e, Finished) for e in events)
        # The stop closed the push (the offer is withdrawn); the content is still served.
        async with httpx.AsyncClient(base_url=connector.http_url) as client:
            form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
            answer = await client.post("/provision/activate", content=f"id={ID}", headers=form)
            token = answer.text
            headers = {"X-Exosite-CIK": token}
            listing = await client.get("/provision/download", headers=headers)
            pinned = [i for i in listing.text.splitlines() if "#sha256=" in i]
            assert len(pinned) == 2
            for item in pinned:
                plain = item.split("#", 1)[0]
                for asked in (item, plain):
                    got = await client.get(
                        f"/provision/download?id={quote_plus(asked)}", headers=headers
                    )
                    assert got.status_code == 200
                    assert sha(got.content) == item.rsplit("=", 1)[1]
