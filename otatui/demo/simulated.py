"""The demo's simulated devices: the ones with a life of their own (a device a monitor watches,
the offline sensors behind the serial and LAN bridges).

Which of them can run depends on what this build has; `supports()` leaves out a scripted device
whose simulation is not available, so the demo never waits for an update nobody can perform.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from otatui.demo.script import DemoDevice

if TYPE_CHECKING:
    from otatui.demo.site import DemoSite


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for the LAN connector, which needs fixed ports)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Simulated:
    """Starts and stops the simulated devices of the demo."""

    def __init__(self, root: Path, *, step_delay: float) -> None:
        self.root = root
        self.step_delay = step_delay
        self._tasks: list[asyncio.Task[None]] = []

    def supports(self, device: DemoDevice) -> bool:
        """Whether this build can run the device (its simulation, if it needs one)."""
        return not device.simulated

    async def prepare(
        self, devices: tuple[DemoDevice, ...], lan: tuple[int, int] | None
    ) -> dict[str, str]:
        """Set up the local links of the bridged devices; their `link` config values."""
        return {}

    async def start(self, site: DemoSite) -> None:
        """Start the simulated devices against the running site."""

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
