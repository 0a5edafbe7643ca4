"""Shared pieces of the LAN tests: a local connector on 127.0.0.1, a simulated LAN device running
in a task, install requests built from files, and collecting a link's events."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

from engine_helpers import sha

from otatui.connector import Connector
from otatui.links.link import InstallRequest
from otatui.otau.manifest import Manifest, parse_manifest
from otatui.otau.progress import ProgressPolicy
from otatui.otau.status import StatusReport
from otatui.sim.lan_device import LanDevice

ID = "a0001"
CLOUD_TOKEN = "Ed9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK9y"  # what the real connector gave it
FAST = ProgressPolicy(min_interval=0.0, min_percent=0.0, install_step_interval=0.0)


@contextlib.asynccontextmanager
async def local_connector(data_dir: Path | None = None) -> AsyncIterator[Connector]:
    """The laptop's local connector: HTTP and MQTT on free ports of 127.0.0.1."""
    connector = Connector(host="127.0.0.1", http_port=0, mqtt_port=0, data_dir=data_dir)
    await connector.start()
    try:
        yield connector
    finally:
        await connector.stop()


def lan_device(
    connector: Connector, folder: Path, protocol: str = "mqtt", **kwargs: object
) -> LanDevice:
    options: dict[str, object] = {
        "identity": ID,
        "installed_version": "1.0.0",
        "step_delay": 0.0,
        "policy": FAST,
        "request_timeout_ms": 5_000,
    }
    options.update(kwargs)
    return LanDevice(
        base_url=connector.http_url,
        mqtt_url=connector.mqtt_url,
        protocol=protocol,  # type: ignore[arg-type]
        folder=folder,
        **options,  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def running(device: LanDevice) -> AsyncIterator[asyncio.Task[None]]:
    """`device.run()` in a task; cancelled (and awaited) at the end. An error it ended with
    is raised here."""
    task = asyncio.create_task(device.run(), name=f"device {device.identity}")
    try:
        yield task
    finally:
        task.cancel()
        results = await asyncio.gather(task, return_exceptions=True)
        if isinstance(results[0], Exception):
            raise results[0]


def make_request(
    folder: Path, manifest: dict[str, object], files: dict[str, bytes]
) -> InstallRequest:
    """What the engine hands a link: the manifest as received and its verified files."""
    folder.mkdir(parents=True, exist_ok=True)
    parsed = parse_manifest(json.dumps(manifest))
    assert isinstance(parsed, Manifest), parsed
    paths = []
    for item in parsed.items:
        path = folder / item.filename
        path.write_bytes(files[item.filename])
        paths.append(path)
    return InstallRequest(manifest=parsed, files=tuple(paths), workdir=folder)


def firmware_request(folder: Path, version: str, fw: bytes, extra: bytes) -> InstallRequest:
    """A URL_LIST of one connector content item and one external URL (pinned)."""
    return make_request(
        folder,
        {
            "version": version,
            "name": f"Firmware {version}",
            "type": "URL_LIST",
            "payload": [
                f"fw_{version}.bin",
                f"https://files.example.com/extra.tar?sig=x#sha256={sha(extra)}",
            ],
        },
        {f"fw_{version}.bin": fw, "extra.tar": extra},
    )


def otau_reports(connector: Connector, identity: str = ID) -> list[StatusReport]:
    return [StatusReport.from_json(r.value) for r in connector.reports(identity, "otau_in")]


def files_containing(root: Path, needle: str) -> list[Path]:
    """Every file under `root` whose bytes contain `needle`."""
    data = needle.encode()
    return [p for p in root.rglob("*") if p.is_file() and data in p.read_bytes()]
