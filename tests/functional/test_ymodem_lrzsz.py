"""YMODEM interop with Debian's lrzsz over real pty pairs, both ways.

`sz --ymodem` (128-byte blocks) and `sz --ymodem -k` (1K blocks) send into our receiver; our
sender sends into `rz --ymodem`. lrzsz runs on the pty slave, we on the master (FdPort), and
once the other way round (our SerialPort on the slave path, rz on the master).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import pytest
from pty_helpers import HAVE_LRZSZ, RZ, SZ, lrzsz, proc_stderr, pty_pair

from otatui.links import ymodem
from otatui.links.byte_port import FdPort, PortClosed, SerialPort
from otatui.links.ymodem import YmodemError

pytestmark = [
    pytest.mark.skipif(not HAVE_LRZSZ, reason="lrzsz (sz, rz) is not installed"),
    pytest.mark.timeout(90),
]

SIZES = [0, 1, 127, 128, 1023, 1024, 1025, 4096, 70_000]


def make_files(folder: Path, sizes: list[int]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for size in sizes:
        path = folder / f"part-{size}.bin"
        path.write_bytes(os.urandom(size))
        paths.append(path)
    return paths


async def wait_exit(proc: subprocess.Popen[bytes], seconds: float = 15) -> int:
    for _ in range(int(seconds * 20)):
        code = proc.poll()
        if code is not None:
            return code
        await asyncio.sleep(0.05)
    raise AssertionError(f"{proc.args[0]} did not exit: {proc_stderr(proc)}")


@pytest.mark.parametrize("one_k", [False, True], ids=["sz-128", "sz-1k"])
async def test_sz_into_our_receiver(tmp_path: Path, one_k: bool) -> None:
    paths = make_files(tmp_path / "src", SIZES)
    args = [SZ, "--ymodem", *(["-k"] if one_k else []), *map(str, paths)]
    with pty_pair() as pty:
        port = FdPort(pty.master, name="pty master", owns_fd=False)
        try:
            with lrzsz(args, pty) as proc:
                received = await ymodem.receive(port, tmp_path / "dst", timeout=5)
                assert await wait_exit(proc) == 0, proc_stderr(proc)
        finally:
            await port.aclose()
    assert [r.name for r in received] == [p.name for p in paths]
    for path, got in zip(paths, received, strict=True):
        assert got.path.read_bytes() == path.read_bytes(), got.name
        assert got.size == path.stat().st_size


async def test_our_sender_into_rz(tmp_path: Path) -> None:
    paths = make_files(tmp_path / "src", [0, 1, 1023, 1025, 200_000])
    out = tmp_path / "rz"
    out.mkdir()
    done: list[int] = []
    with pty_pair() as pty:
        port = FdPort(pty.master, name="pty master", owns_fd=False)
        try:
            with lrzsz([RZ, "--ymodem"], pty, cwd=out) as proc:
                await ymodem.send(
                    port,
                    [(p.name, p) for p in paths],
                    timeout=15,
                    on_progress=lambda p: done.append(p.done),
                )
                assert await wait_exit(proc) == 0, proc_stderr(proc)
        finally:
            await port.aclose()
    for path in paths:
        assert (out / path.name).read_bytes() == path.read_bytes(), path.name
    assert done[-1] == 200_000


async def test_our_serial_port_on_the_slave_path_into_rz_on_the_master(tmp_path: Path) -> None:
    paths = make_files(tmp_path / "src", [5000, 2048])
    out = tmp_path / "rz"
    out.mkdir()
    with pty_pair() as pty:
        port = await SerialPort.open(pty.slave_path, 115200)
        pty.close_slave()
        try:
            with lrzsz([RZ, "--ymodem"], pty, cwd=out, on_master=True) as proc:
                await ymodem.send(port, [(p.name, p) for p in paths], timeout=15)
                assert await wait_exit(proc) == 0, proc_stderr(proc)
        finally:
            await port.aclose()
    for path in paths:
        assert (out / path.name).read_bytes() == path.read_bytes(), path.name


async def test_rz_killed_mid_transfer_ends_our_sender_with_one_line(tmp_path: Path) -> None:
    paths = make_files(tmp_path / "src", [4 << 20])
    out = tmp_path / "rz"
    out.mkdir()
    blocks: list[int] = []
    with pty_pair() as pty:
        port = FdPort(pty.master, name="pty master", owns_fd=False)
        try:
            with lrzsz([RZ, "--ymodem"], pty, cwd=out) as proc:
                sender = asyncio.create_task(
                    ymodem.send(
                        port, [(p.name, p) for p in paths], timeout=5, on_progress=blocks.append
                    )
                )
                while len(blocks) < 50 and not sender.done():
                    await asyncio.sleep(0.01)
                os.kill(proc.pid, signal.SIGTERM)  # rz sends CANs as it goes
                with pytest.raises((YmodemError, PortClosed)) as err:
                    await asyncio.wait_for(sender, 20)
        finally:
            await port.aclose()
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(("the device cancelled the transfer", "the other side of"))
    assert "of part-4194304.bin" in message


async def test_cancelling_our_receiver_stops_sz(tmp_path: Path) -> None:
    paths = make_files(tmp_path / "src", [4 << 20])
    blocks: list[int] = []
    with pty_pair() as pty:
        port = FdPort(pty.master, name="pty master", owns_fd=False)
        try:
            with lrzsz([SZ, "--ymodem", "-k", str(paths[0])], pty) as proc:
                receiver = asyncio.create_task(
                    ymodem.receive(port, tmp_path / "dst", timeout=5, on_progress=blocks.append)
                )
                while len(blocks) < 50 and not receiver.done():
                    await asyncio.sleep(0.01)
                receiver.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await receiver
                assert await wait_exit(proc) != 0  # sz saw our CANs and gave up
        finally:
            await port.aclose()
    assert list((tmp_path / "dst").iterdir()) == []
