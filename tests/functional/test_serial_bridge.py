"""The serial bridge in-process: the cloud connector offers a manifest to a bridged device; the
engine's Fleet (bridge role, `link = "serial:<pty>"`) downloads it and pushes it with SerialLink to
the simulated device on a real pty pair; the device's own reports reach the cloud labelled
`serial`. Nothing secret goes down the serial line."""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine_helpers import statuses, wait_status
from serial_helpers import device_on_pty

from otatui.config import load_config
from otatui.connector import Connector
from otatui.engine.fleet import Fleet
from otatui.store import StoreReader

ID = "sensor-1-id"
TOKEN = "Qm9yTm90VG9TZXJpYWwtdGhpcy1pcy1hLXRlc3Q1"
FW = os.urandom(20_000)


def bridge_config(tmp_path: Path, cloud: Connector, port: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        "\n".join(
            [
                'site = "plant"',
                "[connector]",
                f'url = "{cloud.http_url}"',
                f'mqtt_url = "{cloud.mqtt_url}"',
                "insecure = true",
                "[paths]",
                f'data_dir = "{tmp_path / "data"}"',
                f'cache_dir = "{tmp_path / "cache"}"',
                "[[devices]]",
                'name = "sensor-1"',
                f'identity = "{ID}"',
                f'token = "{TOKEN}"',
                'protocol = "mqtt"',
                'role = "bridge"',
                f'link = "serial:{port}?baud=115200"',
                'installed_version = "1.0.0"',
            ]
        )
        + "\n"
    )
    return path


async def test_serial_bridge_end_to_end(tmp_path: Path) -> None:
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
        async with device_on_pty(folder, identity=ID, installed_version="1.0.0") as sim:
            config = load_config(bridge_config(tmp_path, cloud, sim.path))
            async with Fleet(config, request_timeout_ms=5_000) as fleet:
                fleet.start()
                await wait_status(cloud, ID, "1.0.0", "INSTALLED_VERSION")
                cloud.set_config_otau(ID, manifest)
                await wait_status(cloud, ID, "2.0.0", "INSTALLED_VERSION", timeout=60)
            down = " ".join(text for kind, text in sim.trace if kind == "recv")
    finally:
        await cloud.stop()

    assert (folder / "installed" / "fw_2.0.0.bin").read_bytes() == FW
    flow = [s for v, s in statuses(cloud, ID) if v == "2.0.0"]
    assert flow[0] == "INIT" and flow[-1] == "INSTALLED_VERSION"
    assert flow.count("INSTALLED_VERSION") == 1
    messages = [json.loads(r.value)["message"] for r in cloud.reports(ID, "otau_in")]
    assert "fw_2.0.0.bin: 20000 bytes, sha256 ok" in messages  # the device's own DOWNLOAD_STEP
    assert TOKEN not in down
    with StoreReader.open_readonly(config.locations.db_path) as reader:
        sources = {row.source for row in reader.history(device="sensor-1") if row.status}
    assert "serial" in sources
