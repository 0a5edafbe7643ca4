"""The serial bridge in-process: the cloud connector offers a manifest to a bridged device; the
engine's Fleet (bridge role, `link = "serial:<pty>"`) downloads it and pushes it with SerialLink to
the simulated device on a real pty pair; the device's own reports reach the cloud labelled
`serial`, as one linear flow (its non-final reports as INSTALL_STEPs), each with the time the
device gave it when that time is plausible. Nothing secret goes down the serial line."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from engine_helpers import site_config, statuses, wait_status
from relay_helpers import assert_linear, device_frames, relayed_value, update_flow
from serial_helpers import device_on_pty

from otatui.config import load_config
from otatui.connector import Connector
from otatui.engine.fleet import Fleet
from otatui.store import StoreReader

ID = "sensor-1-id"
TOKEN = "Qm9yTm90VG9TZXJpYWwtdGhpcy1pcy1hLXRlc3Q1"
FW = os.urandom(20_000)


def bridge_config(tmp_path: Path, cloud: Connector, port: str) -> Path:
    device = {"name": "sensor-1", "identity": ID, "token": TOKEN, "protocol": "mqtt",
              "role": "bridge", "link": f"serial:{port}?baud=115200",
              "installed_version": "1.0.0"}  # fmt: skip
    return site_config(
        tmp_path,
        cloud,
        [device],
        limits="",
        site="plant",
    )


DEVICE_CLOCKS: dict[str, Callable[[], float]] = {
    "a device clock 2 s ahead": lambda: time.time() + 2.0,  # plausible: kept
    "a device clock that starts in 1970": lambda: 1000.0 + time.monotonic(),  # not kept
}


@pytest.mark.parametrize("clock", DEVICE_CLOCKS, ids=list(DEVICE_CLOCKS))
async def test_serial_bridge_end_to_end(tmp_path: Path, clock: str) -> None:
    cloud = Connector(devices=[(ID, TOKEN)])
    await cloud.start()
    try:
        cloud.add_content("fw_2.0.0.bin", FW)
        manifest = {
            "version": "2.0.0",
            "name": "Sensor firmware",
            "type": "URL_LIST",
            "payload": ["fw_2.0.0.bin"],
        }
        folder = tmp_path / "device"
        async with device_on_pty(
            folder, identity=ID, installed_version="1.0.0", clock=DEVICE_CLOCKS[clock]
        ) as sim:
            config = load_config(bridge_config(tmp_path, cloud, sim.path))
            async with Fleet(config, request_timeout_ms=5_000) as fleet:
                fleet.start()
                await wait_status(cloud, ID, "1.0.0", "INSTALLED_VERSION")
                offered = time.time()
                cloud.set_config_otau(ID, manifest)
                await wait_status(cloud, ID, "2.0.0", "INSTALLED_VERSION", timeout=60)
                ended = time.time()
            down = " ".join(text for kind, text in sim.trace if kind == "recv")
            frames = device_frames(sim.trace, "2.0.0")
    finally:
        await cloud.stop()

    assert (folder / "installed" / "fw_2.0.0.bin").read_bytes() == FW
    flow = [s for v, s in statuses(cloud, ID) if v == "2.0.0"]
    assert flow[0] == "INIT" and flow[-1] == "INSTALLED_VERSION"
    assert flow.count("INSTALLED_VERSION") == 1
    assert_linear(update_flow((r.value for r in cloud.reports(ID, "otau_in")), "2.0.0"))
    messages = [json.loads(r.value)["message"] for r in cloud.reports(ID, "otau_in")]
    # the device's own DOWNLOAD_STEP, as an INSTALL_STEP that names it
    assert "device DOWNLOAD_STEP: fw_2.0.0.bin: 20000 bytes, sha256 ok" in messages
    assert TOKEN not in down
    with StoreReader.open_readonly(config.locations.db_path) as reader:
        rows = [r for r in reader.history(device="sensor-1", newest_first=False) if r.status]
    assert "serial" in {row.source for row in rows}
    # Every report the device made, once, in order, with its time or (implausible) the arrival.
    expected = [relayed_value(report) for report, _ in frames]
    relayed = [r for r in rows if r.source == "serial" and r.value in set(expected)]
    assert [r.value for r in relayed] == expected
    assert len(frames) >= 7  # INIT, TEST, TEST_STEP, TEST_SUCCESS, DOWNLOAD, DOWNLOAD_STEP, ...
    times = [r.time for r in relayed]
    assert times == sorted(times)
    said = [t for _, t in frames]
    success_said = [
        json.loads(text)["time"]
        for kind, text in sim.trace
        if kind == "send" and '"INSTALL_SUCCESS"' in text and '"2.0.0"' in text
    ]
    finals = [r.time for r in rows if r.status in ("INSTALL_SUCCESS", "INSTALLED_VERSION")]
    finals = finals[-2:]  # INSTALL_SUCCESS then INSTALLED_VERSION of 2.0.0
    if clock == "a device clock 2 s ahead":
        assert times == pytest.approx(said, abs=1e-6)
        # the final status carries the device's time of its INSTALL_SUCCESS too
        assert finals == pytest.approx([success_said[0]] * 2, abs=1e-6)
    else:
        assert all(offered < t < ended for t in times) and not set(times) & set(said)
