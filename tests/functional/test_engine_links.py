"""The fleet builds each device's link from the configuration (`LinkBuilder`): the install hook
for an agent, `SerialLink` for a serial bridge, `LanLink` on ONE local connector served on
`[lan]` for the LAN bridges (stopped with the fleet; a port it cannot take fails only the LAN
bridges, with the reason). And `otatui sync` refuses, with one line, while an engine runs."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import pytest
from engine_helpers import TOKENS, agent, wait_status, write_config

from otatui.config import Config, load_config
from otatui.connector import Connector
from otatui.engine.events import Event, EventBus, SessionError
from otatui.engine.fleet import Fleet
from otatui.engine.link_builder import LinkBuilder
from otatui.links.lan import LanLink
from otatui.links.local import LocalLink
from otatui.links.serial import SerialLink
from otatui.murano.channel import ChannelError

CLI = Path(sys.executable).parent / "otatui"


@pytest.fixture
async def connector():  # type: ignore[no-untyped-def]
    c = Connector(devices=list(TOKENS.items()))
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


def site(tmp_path: Path, connector: Connector, lan: str, *, with_lan: bool = True) -> Config:
    devices: list[dict[str, object]] = [
        agent("gw", "a0001", "mqtt", tmp_path / "records"),
        {
            "name": "sensor-1", "identity": "s0001", "token": TOKENS["a0002"], "protocol": "http",
            "role": "bridge", "installed_version": "1.0.0",
            "link": "serial:/dev/ttyUSB7?baud=9600",
        },
    ]  # fmt: skip
    if with_lan:
        devices.append(
            {
                "name": "sensor-2",
                "identity": "a0003",
                "token": TOKENS["a0003"],
                "protocol": "mqtt",
                "role": "bridge",
                "installed_version": "1.0.0",
                "link": "lan",
            }
        )
    path = write_config(
        tmp_path / "site.toml",
        connector,
        devices,
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
    )
    with path.open("a") as f:
        f.write(lan)
    return load_config(path)


LOOPBACK = '[lan]\nhost = "127.0.0.1"\nhttp_port = 0\nmqtt_port = 0\n'


async def test_links_are_built_from_the_config(tmp_path: Path, connector: Connector) -> None:
    config = site(tmp_path, connector, LOOPBACK)
    links = LinkBuilder(config)
    assert links.needs_lan
    await links.start()
    try:
        lan_connector = links.lan_connector
        assert lan_connector is not None
        assert lan_connector.http_url.startswith("http://127.0.0.1:")
        assert (config.lan_data_dir / "state").is_dir()  # its state lives under the data dir
        gw = links(config.device("gw"))
        assert isinstance(gw, LocalLink)
        serial = links(config.device("sensor-1"))
        assert isinstance(serial, SerialLink) and serial.source == "serial"
        assert (serial.port, serial.baud, serial.identity) == ("/dev/ttyUSB7", 9600, "s0001")
        lan = links(config.device("sensor-2"))
        assert isinstance(lan, LanLink) and lan.source == "lan"
        assert links(config.device("sensor-2")) is not lan  # a link per session, one connector
        port = lan_connector.ports["http"]
    finally:
        await links.aclose()
    assert links.lan_connector is None
    with pytest.raises(OSError):  # nothing listens there any more
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()


async def test_no_lan_bridge_no_local_connector(tmp_path: Path, connector: Connector) -> None:
    links = LinkBuilder(site(tmp_path, connector, LOOPBACK, with_lan=False))
    assert not links.needs_lan
    await links.start()
    assert links.lan_connector is None
    await links.aclose()


async def test_a_taken_port_fails_only_the_lan_bridge(tmp_path: Path, connector: Connector) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        lan = f'[lan]\nhost = "127.0.0.1"\nhttp_port = {port}\nmqtt_port = 0\n'
        config = site(tmp_path, connector, lan)
        links = LinkBuilder(config)
        await links.start()
        assert links.lan_connector is None
        assert f"ports {port} (HTTP)" in links.lan_error and "[lan]" in links.lan_error
        with pytest.raises(ChannelError, match="sensor-2: cannot serve the LAN connector"):
            links(config.device("sensor-2"))
        # In a fleet: the LAN bridge shows the reason, the agent runs on.
        seen: list[Event] = []
        bus = EventBus()
        bus.subscribe(seen.append)
        async with Fleet(config, bus=bus, request_timeout_ms=5_000) as fleet:
            fleet.start()
            await wait_status(connector, "a0001", "1.0.0", "INSTALLED_VERSION")
            errors = [e for e in seen if isinstance(e, SessionError) and e.device == "sensor-2"]
            assert errors and "cannot serve the LAN connector" in errors[0].message
            assert fleet.session("gw") is not None
        await links.aclose()


async def test_sync_refuses_while_the_engine_runs(tmp_path: Path, connector: Connector) -> None:
    config = site(tmp_path, connector, LOOPBACK, with_lan=False)
    async with Fleet(config, request_timeout_ms=5_000) as fleet:
        fleet.start()
        await wait_status(connector, "a0001", "1.0.0", "INSTALLED_VERSION")
        proc = await asyncio.create_subprocess_exec(
            str(CLI),
            "--config",
            str(config.config_file),
            "sync",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = err.decode().strip().splitlines()
    assert proc.returncode != 0 and out == b""
    assert len(lines) == 1 and "otatui run (pid " in lines[0], lines
    assert "sends its outbox itself; stop it before running otatui sync" in lines[0]
    # Once the engine has stopped, sync runs (nothing to send here).
    proc = await asyncio.create_subprocess_exec(
        str(CLI),
        "--config",
        str(config.config_file),
        "sync",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
