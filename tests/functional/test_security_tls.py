"""Transport security: TLS is verified by default and `ca_file` is honoured; plain http:// and
mqtt:// connector URLs are refused unless `insecure = true`.

A throw-away CA signs the local connector's certificate (made here with the `openssl` command
line). With `ca_file` naming that CA, an MQTT and an HTTP agent connect over MQTTS and HTTPS and
install an update (the content download goes over HTTPS too). Without it, or with
`insecure = true` (which never turns verification off), both devices stop at a clear certificate
error and nothing reaches the connector.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from engine_helpers import TOKENS, sha, wait_status, write_config
from fault_helpers import eventually, fault_agent, make_ca, running_fleet

from otatui.connector import Connector
from otatui.engine.events import ConnectionChanged, SessionError

OTATUI = str(Path(sys.executable).with_name("otatui"))
AGENTS = {"mqtt-gw": ("a0001", "mqtt"), "http-gw": ("a0002", "http")}


def tls_config(path: Path, connector: Connector, ca_file: Path | None, **connector_keys: object):
    """A config pointing at the connector's TLS listeners (by host name: SNI and the SAN)."""
    table: dict[str, object] = {
        "url": f"https://localhost:{connector.ports['https']}",
        "mqtt_url": f"mqtts://localhost:{connector.ports['mqtts']}",
    }
    if ca_file is not None:
        table["ca_file"] = str(ca_file)
    table.update(connector_keys)
    devices = [
        fault_agent(name, identity, protocol, path.parent / "records" / name)
        for name, (identity, protocol) in AGENTS.items()
    ]
    return write_config(
        path, table, devices, data_dir=path.parent / "data", cache_dir=path.parent / "cache"
    )


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
async def tls_connector(ca: tuple[Path, Path, Path]):
    _, cert, key = ca
    connector = Connector(
        http_port=None, mqtt_port=None, https_port=0, mqtts_port=0,
        tls_cert=cert, tls_key=key, devices=list(TOKENS.items()),
    )  # fmt: skip
    await connector.start()
    try:
        yield connector
    finally:
        await connector.stop()


async def test_with_ca_file_both_protocols_update_over_tls(
    tmp_path: Path, tls_connector: Connector, ca: tuple[Path, Path, Path]
) -> None:
    firmware = os.urandom(300_000)
    tls_connector.add_content("fw.bin", firmware)
    cfg = tls_config(tmp_path / "site.toml", tls_connector, ca[0])
    offer = {"version": "2.0.0", "name": "fw", "type": "FILE", "payload": "fw.bin"}
    async with running_fleet(cfg):
        for identity, _ in AGENTS.values():
            await wait_status(tls_connector, identity, "1.0.0", "INSTALLED_VERSION", 20)
            tls_connector.set_config_otau(identity, offer)
        for identity, _ in AGENTS.values():
            await wait_status(tls_connector, identity, "2.0.0", "INSTALLED_VERSION", 20)
    for name in AGENTS:
        got = json.loads((tmp_path / "records" / name / "2.0.0.json").read_text())
        assert got["files"] == {"fw.bin": sha(firmware)}
    assert tls_connector.mqtt.connects >= 1  # the MQTT agent did come in over MQTTS


@pytest.mark.parametrize("insecure", [False, True], ids=["default", "insecure=true"])
async def test_without_the_ca_no_device_connects_and_the_reason_is_clear(
    tmp_path: Path, tls_connector: Connector, insecure: bool
) -> None:
    cfg = tls_config(tmp_path / "site.toml", tls_connector, None, insecure=insecure)
    async with running_fleet(cfg) as (_fleet, seen):

        def refused(name: str) -> list[str]:
            return [
                e.reason if isinstance(e, ConnectionChanged) else e.message
                for e in seen
                if e.device == name and isinstance(e, ConnectionChanged | SessionError)
                and "certificate" in (e.reason if isinstance(e, ConnectionChanged) else e.message)
            ]  # fmt: skip

        for name in AGENTS:
            await eventually(lambda n=name: bool(refused(n)), 15, f"{name}: certificate error")
        await asyncio.sleep(0.5)
    for name in AGENTS:
        reason = refused(name)[0]
        assert "\n" not in reason and len(reason) < 300, reason
        assert not any(token in reason for token in TOKENS.values())
    assert "not trusted" in refused("mqtt-gw")[0]
    assert "CERTIFICATE_VERIFY_FAILED" in refused("http-gw")[0]
    # Nothing got through: no MQTT session, no report, no activation.
    assert tls_connector.mqtt.connects == 0
    for identity, _ in AGENTS.values():
        assert tls_connector.reports(identity) == []


@pytest.mark.parametrize(
    ("url", "mqtt_url", "key"),
    [
        ("http://127.0.0.1:8080", "mqtts://127.0.0.1:8883", "connector.url"),
        ("https://127.0.0.1:8443", "mqtt://127.0.0.1:1883", "connector.mqtt_url"),
    ],
)
def test_plain_connector_urls_are_refused_by_the_commands_unless_insecure(
    tmp_path: Path, url: str, mqtt_url: str, key: str
) -> None:
    base = f'[connector]\nurl = "{url}"\nmqtt_url = "{mqtt_url}"\n'
    device = (
        f'[[devices]]\nname = "gw"\nidentity = "a0001"\ntoken = "{TOKENS["a0001"]}"\n'
        'role = "monitor"\n'
    )
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "d"), "XDG_CACHE_HOME": str(tmp_path)}
    refused = tmp_path / "plain.toml"
    refused.write_text(base + device)
    for command in (["run", "--headless"], ["status"]):
        result = subprocess.run(
            [OTATUI, "--config", str(refused), *command],
            capture_output=True, text=True, timeout=30, env=env, check=False,
        )  # fmt: skip
        assert result.returncode == 2, result
        assert result.stderr.count("\n") == 1
        assert f"{key}: plain " in result.stderr and "insecure = true" in result.stderr
    allowed = tmp_path / "insecure.toml"
    allowed.write_text(base + "insecure = true\n" + device)
    result = subprocess.run(
        [OTATUI, "--config", str(allowed), "config"],
        capture_output=True, text=True, timeout=30, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["connector"]["insecure"] is True
