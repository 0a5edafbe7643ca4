"""The `serial` link: push a manifest and its files to an offline device on a serial port.

The wire protocol (JSON control frames + a YMODEM-1K batch) is documented for firmware developers
in docs/serial-link.md; the frames are in `otatui.links.serial_frames`, YMODEM in
`otatui.links.ymodem`. One push: open the port, hello (identity check), manifest and its echo,
the device's reports, the files it asks for, its reports up to `INSTALLED_VERSION` or an error.

The push runs in a worker task that posts events to a queue; `install()` yields them. Closing
the generator early (cancel) cancels the worker, which aborts a YMODEM batch (CAN CAN), sends the
`cancel` frame, waits briefly for the device's confirmation and closes the port. Nothing secret
ever goes down the line: the device gets the manifest text, the files' names, sizes and sha256.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from otatui.links.byte_port import SerialPort
from otatui.links.link import Finished, InstallEvent, InstallRequest
from otatui.links.serial_push import OpenPort, Push
from otatui.links.serial_timeouts import SerialTimeouts

__all__ = ["OpenPort", "SerialLink", "SerialTimeouts"]


class SerialLink:
    """Pushes updates to a device on a serial port (bridge role)."""

    source = "serial"

    def __init__(
        self,
        port: str,
        baud: int = 115200,
        *,
        identity: str,
        open_port: OpenPort = SerialPort.open,
        timeouts: SerialTimeouts | None = None,
    ) -> None:
        self.port = port
        self.baud = baud
        self.identity = identity
        self.open_port = open_port
        self.timeouts = timeouts or SerialTimeouts()

    def __repr__(self) -> str:
        return f"SerialLink({self.port!r}, {self.baud}, identity={self.identity!r})"

    async def install(self, request: InstallRequest) -> AsyncGenerator[InstallEvent, None]:
        queue: asyncio.Queue[InstallEvent | None] = asyncio.Queue()
        push = Push(self, request, queue.put_nowait)
        worker = asyncio.create_task(push.run(), name=f"serial push on {self.port}")
        try:
            while True:
                event = await queue.get()
                if event is None:  # the worker ended without a result (a bug): say so
                    yield Finished(False, f"the serial link on {self.port} ended without a result")
                    return
                yield event
                if isinstance(event, Finished):
                    return
        finally:
            if not worker.done():
                worker.cancel()
                await asyncio.wait({worker})  # its abort is bounded by the cancel timeout
