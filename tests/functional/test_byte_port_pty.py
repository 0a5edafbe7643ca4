"""FdPort and SerialPort over real pty pairs: data both ways, back-pressure, close, open errors."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from pty_helpers import pty_pair

from otatui.links.byte_port import FdPort, LinkError, PortClosed, SerialPort


async def test_serial_port_on_pty_slave_both_ways() -> None:
    with pty_pair() as pty:
        master = FdPort(pty.master, name="pty master", owns_fd=False)
        port = await SerialPort.open(pty.slave_path, 115200)
        pty.close_slave()
        try:
            await port.write(b"hello\r\nworld")
            assert await master.readline(2) == b"hello\r\n"
            assert await master.read(100, 2) == b"world"
            await master.write(b"\x00\x11\x13\x18\x1a\x7f\xff\r\n")  # raw: no translation
            got = b""
            while len(got) < 9:
                got += await port.read(100, 2)
            assert got == b"\x00\x11\x13\x18\x1a\x7f\xff\r\n"
        finally:
            await port.aclose()
            await master.aclose()


async def test_large_write_waits_for_the_reader() -> None:
    data = os.urandom(3 << 20)  # far more than the pty buffer: the writer must wait
    with pty_pair() as pty:
        master = FdPort(pty.master, owns_fd=False)
        port = await SerialPort.open(pty.slave_path)
        pty.close_slave()
        try:

            async def read_all() -> bytes:
                got = bytearray()
                while len(got) < len(data):
                    got += await port.read(1 << 20, 5)
                return bytes(got)

            reader = asyncio.create_task(read_all())
            await master.write(data)
            assert await asyncio.wait_for(reader, 30) == data
        finally:
            await port.aclose()
            await master.aclose()


async def test_other_side_closing_raises_port_closed() -> None:
    with pty_pair() as pty:
        master = FdPort(pty.master, owns_fd=False)
        port = await SerialPort.open(pty.slave_path)
        pty.close_slave()
        await port.write(b"bye")
        await port.aclose()
        assert await master.read(10, 2) == b"bye"
        with pytest.raises(PortClosed):
            await master.read(10, 2)
        with pytest.raises(PortClosed):
            await master.write(b"x")
        await master.aclose()
        with pytest.raises(PortClosed, match="is closed"):
            await master.read(1, 0)


async def test_discard_input_drops_what_the_kernel_holds() -> None:
    with pty_pair() as pty:
        master = FdPort(pty.master, owns_fd=False)
        port = await SerialPort.open(pty.slave_path)
        pty.close_slave()
        try:
            await master.write(b"stale")
            await asyncio.sleep(0.05)
            port.discard_input()
            await master.write(b"fresh")
            assert await port.read(10, 2) == b"fresh"
        finally:
            await port.aclose()
            await master.aclose()


async def test_open_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(LinkError, match=r"^cannot open /nonexistent/ttyUSB9: no such device$"):
        await SerialPort.open("/nonexistent/ttyUSB9")
    plain = tmp_path / "file"
    plain.write_bytes(b"")
    with pytest.raises(LinkError, match="not a serial port"):
        await SerialPort.open(str(plain))
    with pty_pair() as pty:
        first = await SerialPort.open(pty.slave_path)
        try:
            with pytest.raises(LinkError, match="in use by another program"):
                await SerialPort.open(pty.slave_path)
        finally:
            await first.aclose()
