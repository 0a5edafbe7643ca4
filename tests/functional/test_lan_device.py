"""`LanDevice` on its own against a connector, as the demo's online device: a given token, its
folder across restarts, a JSON manifest, refused credentials."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from connector_helpers import make_cert, tls_connector
from engine_helpers import wait_status
from lan_helpers import ID, lan_device, local_connector, otau_reports, running
from wait_helpers import eventually

from otatui.connector import Connector
from otatui.otau.status import Status, StatusReport
from otatui.sim.lan_device import LanDevice, LanDeviceError

TOKEN = "Zz9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK00"


async def until(connector: Connector, version: str, status: Status, within: float = 20) -> None:
    await wait_status(connector, ID, version, status.value, within)


@pytest.mark.parametrize("protocol", ["mqtt", "http"])
async def test_online_device_with_a_given_token_follows_the_connector(
    tmp_path: Path, protocol: str
) -> None:
    async with local_connector() as connector:
        connector.add_device(ID, TOKEN)  # provisioned already: no activation
        fw = b"online firmware" * 1000
        connector.add_content("fw.bin", fw)
        device = lan_device(connector, tmp_path / "dev", protocol, token=TOKEN)
        async with running(device):
            await until(connector, "1.0.0", Status.INSTALLED_VERSION)
            manifest = {"version": "2.0.0", "name": "fw", "type": "FILE", "payload": "fw.bin"}
            connector.set_config_otau(ID, manifest)
            await until(connector, "2.0.0", Status.INSTALLED_VERSION)
            json_manifest = {"version": "3", "name": "cfg", "type": "JSON", "payload": {"a": 1}}
            connector.set_config_otau(ID, json_manifest)
            await until(connector, "3", Status.INSTALLED_VERSION)
            await asyncio.wait_for(connector.wait_for_ack(ID), 10)
        assert device.token == TOKEN
        assert (tmp_path / "dev" / "installed" / "2.0.0" / "fw.bin").read_bytes() == fw
        payload = (tmp_path / "dev" / "installed" / "3" / "payload.json").read_text()
        assert json.loads(payload) == {"a": 1}
        assert device.installed_version == "3"
        # The device's own record of what it wrote equals what the connector received.
        assert device.reports == otau_reports(connector)
        acks = [r.value for r in connector.reports(ID, "config_otau")]
        assert acks == [json.dumps(m, separators=(",", ":")) for m in (manifest, json_manifest)]


async def test_restarted_device_keeps_its_token_and_its_new_version(tmp_path: Path) -> None:
    async with local_connector() as connector:
        connector.add_device(ID)
        connector.add_content("fw.bin", b"fw")
        folder = tmp_path / "dev"
        first = lan_device(connector, folder, "http")
        async with running(first):
            connector.set_config_otau(
                ID, {"version": "2.0.0", "name": "fw", "type": "FILE", "payload": "fw.bin"}
            )
            await until(connector, "2.0.0", Status.INSTALLED_VERSION)
        token_file = folder / "token"
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        assert token_file.read_text() == first.token
        count = len(otau_reports(connector))
        # Activating again would be refused (409): the stored token is used instead.
        second = lan_device(connector, folder, "mqtt")
        async with running(second):
            await asyncio.wait_for(second.connected.wait(), 10)
            await eventually(lambda: len(otau_reports(connector)) > count, 10, "a boot report")
        assert second.token == first.token
        assert otau_reports(connector)[count] == StatusReport("2.0.0", Status.INSTALLED_VERSION, "")


async def test_already_provisioned_identity_without_a_token_is_a_clear_error(
    tmp_path: Path,
) -> None:
    async with local_connector() as connector:
        connector.add_device(ID, TOKEN)
        device = lan_device(connector, tmp_path / "dev", "http")
        with pytest.raises(LanDeviceError, match="already provisioned") as caught:
            await asyncio.wait_for(device.run(), 10)
        assert TOKEN not in str(caught.value)


async def test_refused_token_ends_the_device_without_showing_it(tmp_path: Path) -> None:
    async with local_connector() as connector:
        connector.add_device(ID, TOKEN)
        wrong = "W" * 40
        device = lan_device(connector, tmp_path / "dev", "mqtt", token=wrong)
        with pytest.raises(LanDeviceError, match="refused the device's token") as caught:
            await asyncio.wait_for(device.run(), 10)
        assert wrong not in str(caught.value) and wrong not in repr(device)


def test_bad_options_are_refused(tmp_path: Path) -> None:
    common: dict[str, Any] = {
        "base_url": "http://127.0.0.1:1",
        "identity": ID,
        "installed_version": "1",
    }
    with pytest.raises(ValueError, match="fail"):
        LanDevice(**common, protocol="http", folder=tmp_path, fail="reboot")
    with pytest.raises(ValueError, match="mqtt_url"):
        LanDevice(**common, protocol="mqtt", folder=tmp_path)
    with pytest.raises(ValueError, match="protocol"):
        LanDevice(**common, protocol="coap", folder=tmp_path)


@pytest.mark.parametrize("protocol", ["mqtt", "http"])
async def test_device_over_tls_activates_and_installs(tmp_path: Path, protocol: str) -> None:
    cert, key = make_cert(tmp_path)
    connector = tls_connector((cert, key))
    await connector.start()
    try:
        connector.add_device(ID)
        connector.add_content("fw.bin", b"tls firmware")
        device = LanDevice(
            base_url=connector.https_url,
            mqtt_url=connector.mqtts_url,
            identity=ID,
            protocol=protocol,  # type: ignore[arg-type]
            installed_version="1.0.0",
            folder=tmp_path / "dev",
            step_delay=0.0,
            ca_file=str(cert),
        )
        async with running(device):
            connector.set_config_otau(
                ID, {"version": "2.0.0", "name": "fw", "type": "FILE", "payload": "fw.bin"}
            )
            await until(connector, "2.0.0", Status.INSTALLED_VERSION)
        assert (tmp_path / "dev" / "installed" / "2.0.0" / "fw.bin").read_bytes() == b"tls firmware"
    finally:
        await connector.stop()


@pytest.mark.parametrize("protocol", ["mqtt", "http"])
async def test_device_activates_again_after_its_identity_was_reset(
    tmp_path: Path, protocol: str
) -> None:
    async with local_connector() as connector:
        connector.add_device(ID)
        connector.add_content("fw.bin", b"after the reset")
        device = lan_device(connector, tmp_path / "dev", protocol)
        async with running(device) as task:
            await until(connector, "1.0.0", Status.INSTALLED_VERSION)
            first = device.token
            connector.reset_device(ID)  # e.g. the laptop's local connector lost its state

            def activated_again() -> bool:
                assert not task.done()
                return connector.device(ID).token is not None and device.token != first

            await eventually(activated_again, 15, "activated again")
            assert device.token == connector.device(ID).token
            connector.set_config_otau(
                ID, {"version": "2.0.0", "name": "fw", "type": "FILE", "payload": "fw.bin"}
            )
            await until(connector, "2.0.0", Status.INSTALLED_VERSION)
        assert (tmp_path / "dev" / "token").read_text() == device.token != first


async def test_a_stopped_device_waits_for_the_job_it_had_aborted(tmp_path: Path) -> None:
    """A new offer aborts the running job; the device stopped right after still lets that job
    finish its way out (nothing of it runs on once `run()` returned)."""
    ended: list[str] = []

    async def checks(manifest: Any, job: int) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if manifest.version == "2":  # takes a moment to stop (closing its files)
                await asyncio.sleep(0.5)
            ended.append(manifest.version)
            raise

    async with local_connector() as connector:
        connector.add_device(ID, TOKEN)
        device = lan_device(connector, tmp_path / "dev", "http", token=TOKEN)
        device.work.checks = checks  # type: ignore[method-assign]
        async with running(device):
            await until(connector, "1.0.0", Status.INSTALLED_VERSION)
            offer = {"name": "cfg", "type": "JSON", "payload": {"a": 1}}
            connector.set_config_otau(ID, {"version": "2", **offer})
            await until(connector, "2", Status.TEST)
            connector.set_config_otau(ID, {"version": "3", **offer})
            await until(connector, "2", Status.INSTALL_ABORTED)
        assert "2" in ended
