"""Serial link tests: install requests, a simulated device on a real pty pair, event collection.

    async with device_on_pty(folder, identity="s1", installed_version="1.0.0") as sim:
        link = SerialLink(sim.path, identity="s1", timeouts=FAST)
        events = await collect(link, make_request(tmp_path, {"fw.bin": b"..."}))  # link_helpers

The device owns the pty master (closing it, e.g. after `drop_after`, hangs the line up for the
host); our copy of the slave stays open while the device runs, so a host closing its port
between pushes does not end the device.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pty_helpers import pty_pair

from otatui.links.byte_port import BytePort, FdPort
from otatui.links.link import (
    InstallRequest,
)
from otatui.links.serial import SerialTimeouts
from otatui.otau.manifest import Manifest, parse_manifest
from otatui.sim.pass_through_port import PassThroughPort
from otatui.sim.serial_device import SerialDevice

FAST = SerialTimeouts(
    open=2.0,
    hello=0.4,
    hello_attempts=2,
    echo=1.0,
    manifest_attempts=2,
    ping_after=0.4,
    silence=2.0,
    ymodem_start=3.0,
    ymodem_block=0.6,
    ymodem_retries=3,
    cancel=1.5,
    push=30.0,
)


def manifest_for(names: Sequence[str], version: str = "2.1.0") -> Manifest:
    payload = ",".join(f'"{n}"' for n in names)
    raw = f'{{"version":"{version}","name":"sensor fw","type":"URL_LIST","payload":[{payload}]}}'
    parsed = parse_manifest(raw)
    assert isinstance(parsed, Manifest), parsed
    return parsed


def make_request(
    tmp: Path, files: dict[str, bytes], version: str = "2.1.0", job: str = "job-1"
) -> InstallRequest:
    workdir = tmp / job
    workdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files.items():
        path = workdir / name
        path.write_bytes(data)
        paths.append(path)
    return InstallRequest(
        manifest=manifest_for(list(files), version), files=tuple(paths), workdir=workdir
    )


@dataclass
class SimOnPty:
    path: str
    device: SerialDevice
    task: asyncio.Task[None]
    trace: list[tuple[str, str]] = field(default_factory=list)

    def frames(self, kind: str) -> list[str]:
        return [text for k, text in self.trace if k == kind]


class MutePort(PassThroughPort):
    """A port that goes deaf and dumb after `after` bytes were read: reads wait, writes are lost
    (a device that hangs with its port still open)."""

    def __init__(self, inner: BytePort, after: int) -> None:
        super().__init__(inner)
        self.left = after

    @property
    def mute(self) -> bool:
        return self.left <= 0

    async def read(self, size: int, timeout: float) -> bytes:
        if self.mute:
            await asyncio.sleep(timeout)
            return b""
        data = await self.inner.read(min(size, self.left), timeout)
        self.left -= len(data)
        return data

    async def readline(self, timeout: float, limit: int = 65536) -> bytes | None:
        line = None if self.mute else await self.inner.readline(timeout, limit)
        if line is None:
            return None
        self.left -= len(line)
        return line

    async def write(self, data: bytes) -> None:
        if not self.mute:
            await self.inner.write(data)


@contextlib.asynccontextmanager
async def device_on_pty(
    folder: Path, *, mute_after: int | None = None, **options: Any
) -> AsyncIterator[SimOnPty]:
    """A SerialDevice serving the master of a fresh raw pty; yields the slave's path.
    `mute_after`: the device hangs (port open, silent) after reading that many bytes."""
    trace: list[tuple[str, str]] = []
    options.setdefault("step_delay", 0.01)
    with pty_pair() as pty:
        port = FdPort(pty.master, name="pty master")
        pty.disown_master()  # the device's port closes it: dropping the link hangs up the line
        try:
            device_port: BytePort = port if mute_after is None else MutePort(port, mute_after)
            device = SerialDevice(
                device_port,
                folder=folder,
                trace=lambda kind, text: trace.append((kind, text)),
                **options,
            )
            task = asyncio.create_task(device.run())
            try:
                yield SimOnPty(path=pty.slave_path, device=device, task=task, trace=trace)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        finally:
            await port.aclose()
