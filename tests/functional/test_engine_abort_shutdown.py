"""A job the state machine aborted (a newer manifest replaced it) may still be ending when the
engine stops: the session waits for it instead of leaving it running behind its back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from pathlib import Path

from engine_helpers import TOKENS, wait_status, write_config

from otatui.config import load_config
from otatui.connector import Connector
from otatui.engine.fleet import Fleet
from otatui.links.link import InstallEvent, InstallRequest, Step


class SlowToStopLink:
    """A link whose push needs a while to end after it is cancelled (closing a port, say)."""

    source = "serial"

    def __init__(self) -> None:
        self.started: list[str] = []
        self.ended: list[str] = []

    async def install(self, request: InstallRequest) -> AsyncGenerator[InstallEvent, None]:
        version = request.manifest.version
        self.started.append(version)
        try:
            yield Step(f"pushing {version}")
            await asyncio.sleep(3600)
        finally:
            await asyncio.shield(asyncio.sleep(0.5))  # the cleanup outlives the cancel
            self.ended.append(version)


def manifest(version: str) -> str:
    return json.dumps(
        {"version": version, "name": "cfg", "type": "JSON", "payload": {"v": version}}
    )


async def test_the_engine_stops_only_after_an_aborted_push_has_ended(tmp_path: Path) -> None:
    link = SlowToStopLink()
    async with Connector(devices=[("a0001", TOKENS["a0001"])]) as connector:
        device: dict[str, object] = {
            "name": "sensor-1", "identity": "a0001", "token": TOKENS["a0001"],
            "protocol": "mqtt", "role": "bridge", "installed_version": "1.0.0",
            "link": "serial:/dev/ttyUSB0",
        }  # fmt: skip
        config = load_config(
            write_config(
                tmp_path / "site.toml",
                connector,
                [device],
                data_dir=tmp_path / "data",
                cache_dir=tmp_path / "cache",
            )
        )
        async with Fleet(config, link_factory=lambda d: link, request_timeout_ms=5_000) as fleet:
            fleet.start()
            await wait_status(connector, "a0001", "1.0.0", "INSTALLED_VERSION")
            connector.set_config_otau("a0001", manifest("2.0.0"))
            await wait_status(connector, "a0001", "2.0.0", "INSTALL")
            while "2.0.0" not in link.started:
                await asyncio.sleep(0.01)
            connector.set_config_otau("a0001", manifest("3.0.0"))  # aborts the 2.0.0 push
            await wait_status(connector, "a0001", "2.0.0", "INSTALL_ABORTED")
        # the fleet has closed: the aborted push's cleanup ran to its end first
        assert "2.0.0" in link.ended
