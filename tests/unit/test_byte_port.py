"""BytePort behaviour on the in-memory pair: reads, timeouts, lines, discard, close."""

from __future__ import annotations

import asyncio
import time

import pytest

from otatui.links.byte_port import BytePort, LinkError, PortClosed, memory_pair


async def test_read_returns_what_is_there_up_to_size() -> None:
    a, b = memory_pair()
    await a.write(b"abcdef")
    assert await b.read(4, 1) == b"abcd"
    assert await b.read(100, 1) == b"ef"
    assert isinstance(a, BytePort)


async def test_read_times_out_with_empty_bytes() -> None:
    _a, b = memory_pair()
    start = time.monotonic()
    assert await b.read(10, 0.1) == b""
    assert 0.08 <= time.monotonic() - start < 1
    assert await b.read(10, 0) == b""


async def test_read_wakes_when_data_arrives() -> None:
    a, b = memory_pair()

    async def later() -> None:
        await asyncio.sleep(0.05)
        await a.write(b"x")

    task = asyncio.create_task(later())
    assert await b.read(10, 5) == b"x"
    await task


async def test_readline_keeps_partial_line_on_timeout() -> None:
    a, b = memory_pair()
    await a.write(b"first\nsec")
    assert await b.readline(1) == b"first\n"
    assert await b.readline(0.05) is None
    await a.write(b"ond\n")
    assert await b.readline(1) == b"second\n"


async def test_readline_limit() -> None:
    a, b = memory_pair()
    await a.write(b"x" * 100)
    with pytest.raises(LinkError, match="longer than 50 bytes"):
        await b.readline(1, limit=50)


async def test_discard_input() -> None:
    a, b = memory_pair()
    await a.write(b"stale")
    b.discard_input()
    await a.write(b"fresh")
    assert await b.read(10, 1) == b"fresh"


async def test_close_delivers_buffered_data_then_port_closed() -> None:
    a, b = memory_pair()
    await a.write(b"last")
    await a.aclose()
    assert await b.read(10, 1) == b"last"
    with pytest.raises(PortClosed, match="went away"):
        await b.read(10, 1)
    with pytest.raises(PortClosed):
        await b.write(b"x")
    with pytest.raises(PortClosed, match="is closed"):
        await a.write(b"x")


async def test_close_wakes_a_waiting_reader() -> None:
    a, b = memory_pair()
    reader = asyncio.create_task(b.read(10, 10))
    await asyncio.sleep(0.01)
    await a.aclose()
    with pytest.raises(PortClosed):
        await asyncio.wait_for(reader, 2)
