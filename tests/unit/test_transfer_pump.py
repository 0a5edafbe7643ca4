"""The body pump of the raw transport (receive → write → hash on three threads) with scripted
bodies: every byte on disk and hashed, resumed offsets, O_DIRECT and its fallback, errors."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from disk_helpers import disk_with_room

from otatui.transfer.pump import ALIGN, O_DIRECT, BodyPump

MiB = 1 << 20


class ScriptedBody:
    """Random-sized reads of ``data``; after ``cut``: fail, or stall until aborted."""

    def __init__(self, data: bytes, *, cut: int | None = None, fail: bool = False) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.cut = len(data) if cut is None else cut
        self.fail = fail
        self.rng = random.Random(7)
        self.aborted = threading.Event()

    def readinto(self, view: memoryview) -> int:
        if self.pos >= self.cut:
            if self.fail:
                raise httpx.ReadError("connection reset by peer")
            if self.cut < len(self.data):  # a stalled server: wait to be aborted
                self.aborted.wait(10)
                return 0
            return 0
        n = min(len(view), self.cut - self.pos, self.rng.randint(1, 300_000))
        view[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n

    def abort(self) -> None:
        self.aborted.set()


@pytest.fixture
def part(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    path = tmp_path / "x.part"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    yield path, fd
    os.close(fd)


def pump_into(
    path: Path, fd: int, body: ScriptedBody, offset: int = 0, **kw: object
) -> tuple[BodyPump, hashlib._Hash]:
    digest = hashlib.sha256(path.read_bytes()[:offset])
    pump = BodyPump(body, fd=fd, path=path, offset=offset, update=digest.update, **kw)  # type: ignore[arg-type]
    return pump, digest


def test_pump_writes_and_hashes_every_byte_with_direct_io_where_possible(part: tuple[Path, int]):
    path, fd = part
    data = random.Random(1).randbytes(9 * MiB + 123)
    pump, digest = pump_into(path, fd, ScriptedBody(data), buffer_bytes=MiB)
    pump.run()
    assert path.read_bytes() == data
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert pump.written == pump.received == len(data)
    if O_DIRECT and _supports_direct(path):
        assert pump.direct_bytes >= 8 * MiB  # full aligned buffers bypass the page cache
        assert pump.direct_bytes % ALIGN == 0


def test_pump_resumes_at_an_unaligned_offset(part: tuple[Path, int]):
    path, fd = part
    data = random.Random(2).randbytes(5 * MiB)
    start = 123_457
    os.write(fd, data[:start])
    pump, digest = pump_into(path, fd, ScriptedBody(data[start:]), offset=start, buffer_bytes=MiB)
    pump.run()
    assert path.read_bytes() == data
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    if O_DIRECT and _supports_direct(path):
        assert pump.direct_bytes > 0  # aligned again after the first buffer


def test_pump_without_direct_io_writes_through_the_ordinary_descriptor(part: tuple[Path, int]):
    path, fd = part
    data = random.Random(3).randbytes(3 * MiB)
    pump, digest = pump_into(path, fd, ScriptedBody(data), buffer_bytes=MiB, direct=False)
    pump.run()
    assert path.read_bytes() == data and pump.direct_bytes == 0
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_pump_network_error_keeps_what_arrived_then_raises(part: tuple[Path, int]):
    path, fd = part
    data = random.Random(4).randbytes(3 * MiB)
    pump, digest = pump_into(path, fd, ScriptedBody(data, cut=1_500_001, fail=True))
    with pytest.raises(httpx.ReadError):
        pump.run()
    assert pump.written == 1_500_001 == path.stat().st_size
    assert path.read_bytes() == data[:1_500_001]
    assert digest.hexdigest() == hashlib.sha256(data[:1_500_001]).hexdigest()


def test_pump_stop_keeps_everything_received(part: tuple[Path, int]):
    path, fd = part
    data = random.Random(5).randbytes(2 * MiB)
    body = ScriptedBody(data, cut=700_000)  # then the server stalls
    pump, digest = pump_into(path, fd, body)
    worker = threading.Thread(target=pump.run)
    worker.start()
    for _ in range(1000):
        if pump.received == 700_000:
            break
        threading.Event().wait(0.005)
    pump.stop()
    worker.join(10)
    assert not worker.is_alive() and body.aborted.is_set()
    assert pump.written == 700_000 == path.stat().st_size
    assert digest.hexdigest() == hashlib.sha256(data[:700_000]).hexdigest()


class ErrorOnAbortBody(ScriptedBody):
    """A stalled body whose wake-up is an error, as a socket shut down under its reader is."""

    def readinto(self, view: memoryview) -> int:
        n = super().readinto(view)
        if self.aborted.is_set():
            raise httpx.ReadError("Bad file descriptor")
        return n


def test_pump_stop_is_not_an_error_even_when_the_body_raises_on_the_cut(part: tuple[Path, int]):
    path, fd = part
    data = random.Random(6).randbytes(2 * MiB)
    body = ErrorOnAbortBody(data, cut=600_000)
    pump, digest = pump_into(path, fd, body)
    raised: list[BaseException] = []

    def run() -> None:
        try:
            pump.run()
        except BaseException as exc:
            raised.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    for _ in range(1000):
        if pump.received == 600_000:
            break
        threading.Event().wait(0.005)
    pump.stop()
    worker.join(10)
    assert not worker.is_alive()
    assert raised == []  # the cut was asked for: nothing for the caller to retrieve or print
    assert pump.written == 600_000 == path.stat().st_size
    assert digest.hexdigest() == hashlib.sha256(data[:600_000]).hexdigest()


def test_pump_disk_full_leaves_file_and_hash_in_step(part: tuple[Path, int]):
    path, fd = part
    small_disk = disk_with_room(2_345_678)
    data = random.Random(6).randbytes(6 * MiB)
    body = ScriptedBody(data)
    pump, digest = pump_into(path, fd, body, buffer_bytes=MiB, writev=small_disk, direct=False)
    with pytest.raises(OSError, match="No space"):
        pump.run()
    assert pump.written == path.stat().st_size == 2_345_678
    assert digest.hexdigest() == hashlib.sha256(data[:2_345_678]).hexdigest()
    assert body.aborted.is_set()  # the socket is let go at once


def test_pump_falls_back_when_the_device_refuses_the_alignment(part: tuple[Path, int]):
    path, fd = part
    refused = 0

    def picky(fd: int, buffers: Sequence[bytes | memoryview]) -> int:
        nonlocal refused
        if fcntl_flags(fd) & O_DIRECT:
            refused += 1
            raise OSError(errno.EINVAL, "Invalid argument")
        return os.writev(fd, buffers)

    data = random.Random(8).randbytes(4 * MiB)
    pump, digest = pump_into(path, fd, ScriptedBody(data), buffer_bytes=MiB, writev=picky)
    pump.run()
    assert path.read_bytes() == data and pump.direct_bytes == 0
    assert refused <= 1  # tried once, then the ordinary descriptor for the rest
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_pump_refuses_a_pool_that_cannot_overlap():
    with pytest.raises(ValueError, match="at least 3 buffers"):
        BodyPump(ScriptedBody(b""), fd=-1, path=Path("x"), offset=0, update=print, buffers=2)


def fcntl_flags(fd: int) -> int:
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_GETFL)


def _supports_direct(path: Path) -> bool:
    try:
        os.close(os.open(path, os.O_WRONLY | O_DIRECT))
    except OSError:
        return False
    return True
