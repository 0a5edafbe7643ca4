"""Our YMODEM sender into our receiver over a real pty pair (SerialPort on the slave path)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from pty_helpers import pty_pair

from otatui.links import ymodem
from otatui.links.byte_port import FdPort, SerialPort


async def test_batch_over_a_pty_there_and_back(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    files = []
    for size in (0, 1000, 1024, 1 << 20):
        path = src / f"f{size}.bin"
        path.write_bytes(os.urandom(size))
        files.append((path.name, path))
    with pty_pair() as pty:
        master = FdPort(pty.master, name="pty master", owns_fd=False)
        device = await SerialPort.open(pty.slave_path)
        pty.close_slave()
        try:
            # the host sends to the device on the slave, then the device sends them back
            got, _ = await asyncio.gather(
                ymodem.receive(device, tmp_path / "device", timeout=5),
                ymodem.send(master, files, timeout=5),
            )
            back = [(f.name, f.path) for f in got]
            returned, _ = await asyncio.gather(
                ymodem.receive(master, tmp_path / "host", timeout=5, peer="the device"),
                ymodem.send(device, back, timeout=5, peer="the host"),
            )
        finally:
            await device.aclose()
            await master.aclose()
    assert [f.name for f in returned] == [name for name, _ in files]
    for (_, path), f in zip(files, returned, strict=True):
        assert f.path.read_bytes() == path.read_bytes()
