"""A BytePort wrapper that makes a simulated device vanish after it has received N bytes."""

from __future__ import annotations

import contextlib

from otatui.links.byte_port import BytePort, LinkError, PortClosed
from otatui.sim.pass_through_port import PassThroughPort


class DroppingPort(PassThroughPort):
    """Passes everything through until `drop_after` bytes were read, then closes the port under
    it (the host sees the device go away, like a cable pulled out) and raises PortClosed."""

    def __init__(self, inner: BytePort, drop_after: int) -> None:
        if drop_after < 0:
            raise ValueError("drop_after must be 0 or more bytes")
        super().__init__(inner)
        self.left = drop_after
        self.dropped = False

    async def _drop(self) -> PortClosed:
        self.dropped = True
        with contextlib.suppress(LinkError, OSError):
            await self.inner.aclose()
        return PortClosed("the simulated device dropped the link")

    async def read(self, size: int, timeout: float) -> bytes:  # noqa: ASYNC109 (BytePort API)
        if self.dropped or self.left <= 0:
            raise await self._drop()
        data = await self.inner.read(min(size, self.left), timeout)
        self.left -= len(data)
        return data

    async def readline(self, timeout: float, limit: int = 65536) -> bytes | None:  # noqa: ASYNC109
        if self.dropped or self.left <= 0:
            raise await self._drop()
        line = await self.inner.readline(timeout, limit)
        if line is None:
            return None
        if len(line) > self.left:  # the line is cut: the device never sees its end
            raise await self._drop()
        self.left -= len(line)
        return line

    async def write(self, data: bytes) -> None:
        if self.dropped:
            raise PortClosed("the simulated device dropped the link")
        await self.inner.write(data)
