"""A BytePort that hands everything to the port under it: the base of the ports that simulate a
misbehaving device or line (override what misbehaves)."""

from __future__ import annotations

from otatui.links.byte_port import BytePort


class PassThroughPort:
    """Every BytePort call goes to `inner` unchanged; its `name` is the inner port's."""

    def __init__(self, inner: BytePort) -> None:
        self.inner = inner
        self.name: str = getattr(inner, "name", type(inner).__name__)

    async def read(self, size: int, timeout: float) -> bytes:  # noqa: ASYNC109 (BytePort API)
        return await self.inner.read(size, timeout)

    async def readline(self, timeout: float, limit: int = 65536) -> bytes | None:  # noqa: ASYNC109
        return await self.inner.readline(timeout, limit)

    async def write(self, data: bytes) -> None:
        await self.inner.write(data)

    def discard_input(self) -> None:
        self.inner.discard_input()

    async def aclose(self) -> None:
        await self.inner.aclose()
