"""The whole LAN bridge in-process, over real sockets on 127.0.0.1: the cloud connector offers a
manifest to a bridged device; otatui (the engine's Fleet, bridge role, its cloud token) downloads
it, serves the local connector for the LAN and pushes through `LanLink`; the simulated device on
the LAN (`LanDevice`) activates on the local connector with its own identity, installs and
reports; its reports reach the cloud as one linear flow (its non-final ones as INSTALL_STEPs),
each with the time the local connector recorded it. The cloud token never reaches the LAN
side."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from engine_helpers import ExternalServer, sha, site_config, statuses, wait_status
from lan_helpers import CLOUD_TOKEN, ID, files_containing, lan_device, running
from relay_helpers import assert_linear, relayed_value, update_flow

from otatui.config import load_config
from otatui.connector import Connector
from otatui.engine.fleet import Fleet
from otatui.otau.status import StatusReport
from otatui.store import StoreReader

FW = b"firmware for the plant LAN " * 20_000
EXTRA = b"calibration " * 500


@pytest.fixture
async def cloud() -> AsyncIterator[Connector]:
    async with Connector(devices=[(ID, CLOUD_TOKEN)]) as connector:
        yield connector


@pytest.fixture
def external(tmp_path: Path) -> Iterator[ExternalServer]:
    with ExternalServer(tmp_path / "external") as server:
        yield server


def bridge_config(tmp_path: Path, cloud: Connector, protocol: str) -> Path:
    device = {"name": "sensor-2", "identity": ID, "token": CLOUD_TOKEN, "protocol": protocol,
              "role": "bridge", "link": "lan", "installed_version": "1.0.0"}  # fmt: skip
    return site_config(
        tmp_path,
        cloud,
        [device],
        site="plant",
        sections='[lan]\nhost = "127.0.0.1"\nhttp_port = 0\nmqtt_port = 0',
    )


@pytest.mark.parametrize("protocol", ["mqtt", "http"])
async def test_lan_bridge_end_to_end_keeps_the_cloud_token_off_the_lan(
    tmp_path: Path,
    cloud: Connector,
    external: ExternalServer,
    protocol: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    cloud.add_content("fw_2.0.0.bin", FW)
    (external.root / "cal.dat").write_bytes(EXTRA)
    manifest = {
        "version": "2.0.0",
        "name": "Plant firmware",
        "type": "URL_LIST",
        "payload": ["fw_2.0.0.bin", external.url("cal.dat") + f"#sha256={sha(EXTRA)}"],
    }
    config = load_config(bridge_config(tmp_path, cloud, protocol))
    async with Fleet(config, request_timeout_ms=5_000) as fleet:
        local = fleet.links.lan_connector
        assert local is not None, fleet.links.lan_error
        fleet.start()
        await wait_status(cloud, ID, "1.0.0", "INSTALLED_VERSION")
        device = lan_device(local, tmp_path / "device", protocol, step_delay=0.05)
        async with running(device):
            cloud.set_config_otau(ID, manifest)
            await wait_status(cloud, ID, "2.0.0", "INSTALLED_VERSION", timeout=60)
            await asyncio.wait_for(cloud.wait_for_ack(ID), 10)
        local_token = device.token

    # The device installed the verified files.
    installed = tmp_path / "device" / "installed" / "2.0.0"
    assert sorted(sha(p.read_bytes()) for p in installed.iterdir()) == sorted([sha(FW), sha(EXTRA)])
    # The cloud saw the device's own progress (relayed) and exactly one final status.
    flow = [s for v, s in statuses(cloud, ID) if v == "2.0.0"]
    assert flow[0] == "INIT" and flow[-1] == "INSTALLED_VERSION"
    assert flow.count("INSTALLED_VERSION") == 1
    assert_linear(update_flow((r.value for r in cloud.reports(ID, "otau_in")), "2.0.0"))
    messages = [json.loads(r.value)["message"] for r in cloud.reports(ID, "otau_in")]
    assert "writing 2 file(s)" in messages  # the LAN device's own INSTALL_STEP
    assert any(m.startswith("device DOWNLOAD_STEP: ") for m in messages)  # one of its others
    # Each report the device wrote, once, in order, with the time the local connector has.
    written = [(StatusReport.from_json(r.value), r.timestamp) for r in local.reports(ID, "otau_in")]
    steps = [
        (relayed_value(report), at)
        for report, at in written
        if report.version == "2.0.0" and not report.status.is_final
        and report.status.value != "INSTALL_SUCCESS"
    ]  # fmt: skip
    expected = {value for value, _ in steps}
    with StoreReader.open_readonly(config.locations.db_path) as reader:
        rows = [
            (r.value, r.time)
            for r in reader.history(device="sensor-2", resource="otau_in", newest_first=False)
            if r.source == "lan" and r.value in expected
        ]
    assert len(steps) >= 5 and rows == steps
    # Two tokens, and the cloud one stayed with the cloud.
    assert local_token is not None and local_token != CLOUD_TOKEN
    lan_dir = config.lan_data_dir
    assert lan_dir.is_dir() and files_containing(lan_dir, local_token)
    assert files_containing(lan_dir, CLOUD_TOKEN) == []
    assert files_containing(tmp_path / "device", CLOUD_TOKEN) == []
    assert CLOUD_TOKEN not in caplog.text
    assert local_token not in caplog.text
