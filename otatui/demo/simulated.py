"""The demo's simulated devices: the ones with a life of their own.

- a device that updates itself over the connector and that otatui only watches (monitor role):
  a `LanDevice` against the demo's connector, with the token the demo gave it;
- the offline sensor on a serial cable: a `SerialDevice` on the master side of a pty pair, whose
  other side the bridge opens as `link = "serial:<pty>"`;
- the offline sensor on the plant LAN: a `LanDevice` that activates on the local connector the
  engine serves for LAN bridges (`[lan]`), exactly as it would on Murano.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from otatui.demo.script import DemoDevice
from otatui.links.byte_port import BytePort, FdPort
from otatui.otau.progress import ProgressPolicy
from otatui.sim.lan_device import LanDevice
from otatui.sim.pass_through_port import PassThroughPort
from otatui.sim.pty_pair import PtyPair
from otatui.sim.serial_device import SerialDevice

if TYPE_CHECKING:
    from otatui.demo.site import DemoSite

_log = logging.getLogger(__name__)

LIVELY = ProgressPolicy(min_interval=0.5, min_percent=10)


class SerialLine(PassThroughPort):
    """The device end of a serial line at `baud` (8N1: 10 bits a byte): what the device reads
    arrives no faster than the line carries it, as on a real cable."""

    def __init__(self, inner: BytePort, baud: int) -> None:
        super().__init__(inner)
        self.baud = baud

    async def read(self, size: int, timeout: float) -> bytes:  # noqa: ASYNC109 (BytePort API)
        data = await self.inner.read(size, timeout)
        await asyncio.sleep(len(data) * 10 / self.baud)
        return data

    async def readline(self, timeout: float, limit: int = 65536) -> bytes | None:  # noqa: ASYNC109
        line = await self.inner.readline(timeout, limit)
        await asyncio.sleep(len(line or b"") * 10 / self.baud)
        return line


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for the LAN connector, which needs fixed ports)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Simulated:
    """Starts and stops the simulated devices of the demo."""

    def __init__(self, root: Path, *, step_delay: float, baud: int | None = None) -> None:
        self.root = root
        self.step_delay = step_delay
        self.baud = baud  # the serial sensor's line speed (None: as fast as the pty goes)
        self._tasks: list[asyncio.Task[None]] = []
        self._ptys: dict[str, PtyPair] = {}  # identity -> the pty its bridge opens
        self._lan: tuple[int, int] | None = None
        self._devices: tuple[DemoDevice, ...] = ()

    def supports(self, device: DemoDevice) -> bool:
        """Whether this build can run the device (every demo device, on a POSIX system)."""
        return device.link != "serial" or hasattr(os, "openpty")

    async def prepare(
        self, devices: tuple[DemoDevice, ...], lan: tuple[int, int] | None
    ) -> dict[str, str]:
        """Set up the local links of the bridged devices; their `link` config values."""
        self._devices, self._lan = devices, lan
        links = {}
        for device in devices:
            if device.link == "serial":
                pty = self._ptys[device.identity] = PtyPair()
                links[device.identity] = f"serial:{pty.slave_path}"
            elif device.link == "lan":
                links[device.identity] = "lan"
        return links

    async def start(self, site: DemoSite) -> None:
        """Start the simulated devices against the running site."""
        for device in self._devices:
            folder = self.root / device.name
            if device.role == "monitor" and device.simulated:
                self._run(
                    device,
                    LanDevice(
                        base_url=site.connector.http_url,
                        mqtt_url=site.connector.mqtt_url,
                        identity=device.identity,
                        protocol="mqtt" if device.protocol == "mqtt" else "http",
                        installed_version=device.installed_version,
                        folder=folder,
                        token=site.tokens[device.identity],
                        step_delay=self.step_delay,
                        policy=LIVELY,
                    ).run(),
                )
            elif device.link == "serial":
                pty = self._ptys[device.identity]
                self._run(
                    device,
                    _serve_forever(
                        functools.partial(
                            SerialDevice,
                            identity=device.identity,
                            installed_version=device.installed_version,
                            folder=folder,
                            step_delay=self.step_delay,
                        ),
                        pty,
                        f"{device.name} pty",
                        self.baud,
                    ),
                )
            elif device.link == "lan" and self._lan is not None:
                http_port, mqtt_port = self._lan
                self._run(
                    device,
                    LanDevice(
                        base_url=f"http://127.0.0.1:{http_port}",
                        mqtt_url=f"mqtt://127.0.0.1:{mqtt_port}",
                        identity=device.identity,
                        protocol="mqtt" if device.protocol == "mqtt" else "http",
                        installed_version=device.installed_version,
                        folder=folder,
                        step_delay=self.step_delay,
                        policy=LIVELY,
                    ).run(),
                )

    def _run(self, device: DemoDevice, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.create_task(work, name=f"simulated {device.name}"))

    async def stop(self) -> None:
        """Stop every simulated device (a device that had failed is logged) and close the ptys."""
        for task in self._tasks:
            task.cancel()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        for task, result in zip(self._tasks, results, strict=True):
            if isinstance(result, Exception):
                _log.warning("%s had failed: %s", task.get_name(), result)
        self._tasks.clear()
        for pty in self._ptys.values():
            pty.close()
        self._ptys.clear()


async def _serve_forever(
    make: Callable[[BytePort], SerialDevice], pty: PtyPair, name: str, baud: int | None = None
) -> None:
    """The serial device serves the pty's master push after push. Its `run` ends only when its
    port fails (our copy of the slave keeps the line up between pushes); a new device (on the
    state it saved) then serves a new port on the same master. With `baud`, at that line speed."""
    while True:
        port: BytePort = FdPort(pty.master, name=name, owns_fd=False)
        await make(port if baud is None else SerialLine(port, baud)).run()
        await asyncio.sleep(0.2)
