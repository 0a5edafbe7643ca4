"""YMODEM sender and receiver over in-memory ports: round trips, damage, silence, cancel, names."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from otatui.links import ymodem
from otatui.links.byte_port import BytePort, PortClosed, memory_pair
from otatui.links.ymodem import FileProgress, YmodemError
from otatui.links.ymodem_wire import (
    ACK,
    CAN,
    CRC,
    EOT,
    NAK,
    end_of_batch,
    header_block,
    packet,
    parse_header,
    safe_name,
)
from otatui.sim.pass_through_port import PassThroughPort

FAST = {"timeout": 0.4, "retries": 4, "start_timeout": 2.0}
SIZES = [0, 1, 127, 128, 129, 1023, 1024, 1025, 2048, 3000, 1 << 20]


def make_files(folder: Path, sizes: list[int]) -> list[tuple[str, Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for size in sizes:
        path = folder / f"file-{size}.bin"
        path.write_bytes(os.urandom(size))
        files.append((path.name, path))
    return files


class FaultyPort(PassThroughPort):
    """Wraps a port; `on_write(n, data)` may return changed data, or None to drop the write."""

    def __init__(self, inner: BytePort, on_write: Callable[[int, bytes], bytes | None]) -> None:
        super().__init__(inner)
        self.on_write = on_write
        self.writes = 0

    async def write(self, data: bytes) -> None:
        self.writes += 1
        changed = self.on_write(self.writes, data)
        if changed is not None:
            await self.inner.write(changed)


async def transfer(
    files: list[tuple[str, Path]],
    dest: Path,
    *,
    sender_port: Callable[[BytePort], BytePort] = lambda p: p,
    receiver_port: Callable[[BytePort], BytePort] = lambda p: p,
    crc: bool = True,
) -> list[ymodem.ReceivedFile]:
    a, b = memory_pair()
    received, _ = await asyncio.gather(
        ymodem.receive(receiver_port(b), dest, crc=crc, timeout=0.4, retries=4, start_timeout=2),
        ymodem.send(sender_port(a), files, timeout=0.4, retries=4, start_timeout=2),
    )
    return received


def assert_same(files: list[tuple[str, Path]], received: list[ymodem.ReceivedFile]) -> None:
    assert [r.name for r in received] == [name for name, _ in files]
    for (_, path), got in zip(files, received, strict=True):
        assert got.path.read_bytes() == path.read_bytes(), got.name
        assert got.size == path.stat().st_size
    leftovers = [p.name for p in received[0].path.parent.iterdir() if p.name.endswith(".part")]
    assert leftovers == []


# -- round trips -----------------------------------------------------------------------------


async def test_round_trip_of_many_sizes_in_one_batch(tmp_path: Path) -> None:
    files = make_files(tmp_path / "src", SIZES)
    sent: list[FileProgress] = []
    got: list[FileProgress] = []
    a, b = memory_pair()
    received, _ = await asyncio.gather(
        ymodem.receive(b, tmp_path / "dst", on_progress=got.append, **FAST),  # type: ignore[arg-type]
        ymodem.send(a, files, on_progress=sent.append, **FAST),  # type: ignore[arg-type]
    )
    assert_same(files, received)
    for progress in (sent, got):
        last = {p.index: p for p in progress}
        assert [last[i].done for i in range(len(files))] == SIZES
        assert all(p.count == len(files) for p in progress)
        assert all(p.total == SIZES[p.index] for p in progress)
    assert len([p for p in sent if p.index == len(files) - 1]) == 1 + 1024  # start + one per block


async def test_exact_multiples_and_checksum_mode(tmp_path: Path) -> None:
    files = make_files(tmp_path / "src", [128 * 3, 1024 * 5, 1024 * 8 + 128])
    received = await transfer(files, tmp_path / "dst", crc=False)
    assert_same(files, received)


async def test_empty_batch(tmp_path: Path) -> None:
    assert await transfer([], tmp_path / "dst") == []


async def test_sender_keeps_mtime(tmp_path: Path) -> None:
    files = make_files(tmp_path / "src", [10])
    os.utime(files[0][1], (1_600_000_000, 1_600_000_000))
    received = await transfer(files, tmp_path / "dst")
    assert int(received[0].path.stat().st_mtime) == 1_600_000_000


# -- damage and loss -------------------------------------------------------------------------


async def test_corrupted_blocks_are_resent(tmp_path: Path) -> None:
    files = make_files(tmp_path / "src", [10_000, 500])
    damaged: list[int] = []

    def corrupt(n: int, data: bytes) -> bytes:
        if len(data) > 1000 and n % 3 == 0:  # every third data block arrives damaged
            damaged.append(n)
            return data[:500] + bytes([data[500] ^ 0xFF]) + data[501:]
        return data

    received = await transfer(files, tmp_path / "dst", sender_port=lambda p: FaultyPort(p, corrupt))
    assert_same(files, received)
    assert len(damaged) >= 3


async def test_truncated_block_and_lost_ack_recover(tmp_path: Path) -> None:
    files = make_files(tmp_path / "src", [5000])

    def cut(n: int, data: bytes) -> bytes:
        return data[:600] if n == 4 else data  # part of a block goes missing

    acks: list[int] = []

    def drop_ack(n: int, data: bytes) -> bytes | None:
        if data == bytes([ACK]):
            acks.append(n)
            if len(acks) == 4:  # the ACK of block 3 never reaches the sender
                return None
        return data

    received = await transfer(
        files,
        tmp_path / "dst",
        sender_port=lambda p: FaultyPort(p, cut),
        receiver_port=lambda p: FaultyPort(p, drop_ack),
    )
    assert_same(files, received)
    assert len(acks) > 8  # header, 5 blocks, the repeated block 3, EOT, end of batch


async def test_a_block_lost_in_a_flush_is_sent_again_early(tmp_path: Path) -> None:
    files = make_files(tmp_path / "src", [20_000])
    lost: list[int] = []

    def flush_block_5(n: int, data: bytes) -> bytes | None:
        if data[:2] == b"\x02\x05" and not lost:  # like rz flushing its input after an ACK
            lost.append(n)
            return None
        return data

    a, b = memory_pair()
    start = time.monotonic()
    received, _ = await asyncio.gather(
        ymodem.receive(b, tmp_path / "dst", timeout=5),
        ymodem.send(FaultyPort(a, flush_block_5), files, timeout=5),
    )
    assert lost and time.monotonic() - start < 1.5  # not the 5 s timeout
    assert_same(files, received)


class SlowAckPort(FaultyPort):
    """Delays the receiver's ACK of one block so that the sender repeats it early."""

    def __init__(self, inner: BytePort, slow_ack: int, delay: float) -> None:
        super().__init__(inner, lambda n, d: d)
        self.acks = 0
        self.slow_ack = slow_ack
        self.delay = delay

    async def write(self, data: bytes) -> None:
        if data == bytes([ACK]):
            self.acks += 1
            if self.acks == self.slow_ack:
                await asyncio.sleep(self.delay)
        await self.inner.write(data)


async def test_a_late_ack_and_the_ack_of_the_repeat_do_not_desync(tmp_path: Path) -> None:
    files = make_files(tmp_path / "src", [30_000])
    a, b = memory_pair()
    slow = SlowAckPort(b, slow_ack=6, delay=0.3)  # both copies of block 5 get an ACK
    received, _ = await asyncio.gather(
        ymodem.receive(slow, tmp_path / "dst", timeout=5),
        ymodem.send(a, files, timeout=5),
    )
    assert_same(files, received)
    assert slow.acks > 33  # header + 30 blocks + EOT + end of batch = 33, plus the repeats


# -- silence ---------------------------------------------------------------------------------


async def test_sender_without_receiver_gives_up_after_start_timeout(tmp_path: Path) -> None:
    files = make_files(tmp_path / "src", [10])
    a, _b = memory_pair()
    start = time.monotonic()
    with pytest.raises(YmodemError, match=r"^the device did not ask for file-10.bin within 0.5 s$"):
        await ymodem.send(a, files, timeout=0.2, start_timeout=0.5)
    assert time.monotonic() - start < 2


async def test_receiver_asks_repeatedly_then_gives_up(tmp_path: Path) -> None:
    a, b = memory_pair()
    start = time.monotonic()
    with pytest.raises(YmodemError, match=r"^the sender did not send a file within 0.5 s$"):
        await ymodem.receive(b, tmp_path / "dst", timeout=0.2, start_timeout=0.5)
    assert time.monotonic() - start < 2
    asked = await a.read(100, 0.1)
    requests = asked.rstrip(bytes([CAN]))  # then CANs, for a sender that comes late
    assert set(requests) == {CRC} and len(requests) >= 3  # "C" every timeout / 2
    assert asked.endswith(bytes([CAN, CAN]))


async def test_receiver_silent_mid_transfer(tmp_path: Path) -> None:
    files = make_files(tmp_path / "src", [50_000])

    def mute_after(n: int, data: bytes) -> bytes | None:
        return None if n > 12 else data  # the device stops answering

    a, b = memory_pair()
    receiver = asyncio.create_task(ymodem.receive(FaultyPort(b, mute_after), tmp_path / "dst"))
    start = time.monotonic()
    with pytest.raises(
        YmodemError,
        match=r"^no answer from the device for \d+ s while sending block \d+ of file-50000.bin$",
    ):
        await ymodem.send(a, files, timeout=0.3, retries=3, pace=0)
    assert time.monotonic() - start < 3
    receiver.cancel()
    with pytest.raises((asyncio.CancelledError, YmodemError)):
        await receiver


async def test_sender_silent_mid_transfer(tmp_path: Path) -> None:
    files = make_files(tmp_path / "src", [50_000])

    def mute_after(n: int, data: bytes) -> bytes | None:
        return None if n > 10 else data

    a, b = memory_pair()
    sender = asyncio.create_task(ymodem.send(FaultyPort(a, mute_after), files, timeout=5))
    start = time.monotonic()
    with pytest.raises(
        YmodemError,
        match=r"^no data from the sender for \d+ s while receiving block 10 of file-50000.bin$",
    ):
        await ymodem.receive(b, tmp_path / "dst", timeout=0.4, retries=3)
    assert time.monotonic() - start < 3
    assert list((tmp_path / "dst").iterdir()) == []  # the partial file is gone
    sender.cancel()
    with pytest.raises((asyncio.CancelledError, YmodemError)):
        await sender


# -- cancel ----------------------------------------------------------------------------------


async def test_cancelling_the_sender_cancels_the_receiver(tmp_path: Path) -> None:
    files = make_files(tmp_path / "src", [1 << 20])
    a, b = memory_pair()
    blocks: list[int] = []
    sender = asyncio.create_task(
        ymodem.send(a, files, on_progress=lambda p: blocks.append(p.done), **FAST)  # type: ignore[arg-type]
    )
    receiver = asyncio.create_task(ymodem.receive(b, tmp_path / "dst", **FAST))  # type: ignore[arg-type]
    while len(blocks) < 20:
        await asyncio.sleep(0)
    sender.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sender
    with pytest.raises(
        YmodemError,
        match=r"^the sender cancelled the transfer while receiving block \d+ of file-1048576.bin$",
    ) as err:
        await receiver
    assert err.value.by_peer
    assert list((tmp_path / "dst").iterdir()) == []


async def test_cancelling_the_receiver_cancels_the_sender(tmp_path: Path) -> None:
    files = make_files(tmp_path / "src", [1 << 20])
    a, b = memory_pair()
    blocks: list[int] = []
    receiver = asyncio.create_task(
        ymodem.receive(b, tmp_path / "dst", on_progress=lambda p: blocks.append(p.done), **FAST)  # type: ignore[arg-type]
    )
    sender = asyncio.create_task(ymodem.send(a, files, **FAST))  # type: ignore[arg-type]
    while len(blocks) < 20:
        await asyncio.sleep(0)
    receiver.cancel()
    with pytest.raises(asyncio.CancelledError):
        await receiver
    with pytest.raises(
        YmodemError,
        match=r"^the device cancelled the transfer while sending block \d+ of file-1048576.bin$",
    ):
        await sender
    assert list((tmp_path / "dst").iterdir()) == []


async def test_port_closed_mid_transfer_names_the_block(tmp_path: Path) -> None:
    files = make_files(tmp_path / "src", [100_000])
    a, b = memory_pair()
    task = asyncio.create_task(ymodem.send(a, files, **FAST))  # type: ignore[arg-type]
    await b.write(bytes([CRC]))
    await b.read(2000, 2)
    await b.write(bytes([ACK, CRC]))
    for _ in range(3):
        assert len(await b.read(2000, 2)) == 1029
        await b.write(bytes([ACK]))
    await b.aclose()  # the device vanishes while block 4 is on its way
    with pytest.raises(PortClosed, match=r"went away while sending block 4 of file-100000.bin$"):
        await task


async def test_a_failing_progress_callback_cancels_the_other_side(tmp_path: Path) -> None:
    files = make_files(tmp_path / "src", [10_000])

    def explode(p: FileProgress) -> None:
        if p.done > 3000:
            raise RuntimeError("the UI went away")

    a, b = memory_pair()
    results = await asyncio.gather(
        ymodem.receive(b, tmp_path / "dst", **FAST),  # type: ignore[arg-type]
        ymodem.send(a, files, on_progress=explode, **FAST),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    assert isinstance(results[1], RuntimeError)
    assert isinstance(results[0], YmodemError)
    assert str(results[0]).startswith("the sender cancelled the transfer while receiving block")


# -- what the receiver accepts ---------------------------------------------------------------


async def test_receiver_keeps_only_the_basename(tmp_path: Path) -> None:
    src = make_files(tmp_path / "src", [100])[0][1]
    received = await transfer([("../../etc/evil.bin", src), ("a\\b\\c.bin", src)], tmp_path / "dst")
    assert [r.name for r in received] == ["evil.bin", "c.bin"]
    assert sorted(p.name for p in (tmp_path / "dst").iterdir()) == ["c.bin", "evil.bin"]
    assert not (tmp_path / "etc").exists()


async def test_receiver_refuses_unusable_names(tmp_path: Path) -> None:
    src = make_files(tmp_path / "src", [100])[0][1]
    a, b = memory_pair()
    results = await asyncio.gather(
        ymodem.receive(b, tmp_path / "dst", **FAST),  # type: ignore[arg-type]
        ymodem.send(a, [("dir/..", src)], **FAST),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    assert str(results[0]) == "refused a file with the unusable name 'dir/..'"
    assert str(results[1]) == "the device cancelled the transfer while sending the header of dir/.."


async def test_receiver_refuses_files_above_max_size(tmp_path: Path) -> None:
    files = make_files(tmp_path / "src", [5000])
    a, b = memory_pair()
    results = await asyncio.gather(
        ymodem.receive(b, tmp_path / "dst", max_size=4096, **FAST),  # type: ignore[arg-type]
        ymodem.send(a, files, **FAST),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    assert str(results[0]) == "refused file-5000.bin: 5000 bytes is more than the limit of 4096"
    assert str(results[1]).startswith("the device cancelled the transfer")
    assert list((tmp_path / "dst").iterdir()) == []


# -- the receiver against a scripted sender ----------------------------------------------------


async def test_receiver_handles_duplicates_eot_and_short_blocks(tmp_path: Path) -> None:
    a, b = memory_pair()
    task = asyncio.create_task(ymodem.receive(b, tmp_path / "dst", **FAST))  # type: ignore[arg-type]
    data = os.urandom(1024 + 100)

    async def expect(byte: int) -> None:
        assert await a.read(1, 2) == bytes([byte])

    await expect(CRC)
    await a.write(header_block("x.bin", len(data), 0, 0o644, 1, len(data), True))
    await expect(ACK)
    await expect(CRC)
    await a.write(packet(1, data[:1024], 1024, True))
    await expect(ACK)
    await a.write(packet(1, data[:1024], 1024, True))  # a repeat: ACKed, not written twice
    await expect(ACK)
    await a.write(packet(2, data[1024:], 128, True))
    await expect(ACK)
    await a.write(bytes([EOT]))
    await expect(NAK)  # the first EOT is NAKed, as lrzsz does
    await a.write(bytes([EOT]))
    await expect(ACK)
    await expect(CRC)
    await a.write(end_of_batch(True))
    await expect(ACK)
    received = await task
    assert received[0].path.read_bytes() == data


async def test_receiver_rejects_blocks_out_of_order(tmp_path: Path) -> None:
    a, b = memory_pair()
    task = asyncio.create_task(ymodem.receive(b, tmp_path / "dst", **FAST))  # type: ignore[arg-type]
    assert await a.read(1, 2) == bytes([CRC])
    await a.write(header_block("x.bin", 5000, 0, 0o644, 1, 5000, True))
    assert await a.read(1, 2) == bytes([ACK])
    assert await a.read(1, 2) == bytes([CRC])
    await a.write(packet(3, b"z" * 1024, 1024, True))
    with pytest.raises(YmodemError, match=r"^block 3 came when block 1 of x.bin was due"):
        await task
    rest = await a.read(100, 1)
    assert rest.count(CAN) >= 2  # the receiver told the sender to stop


async def test_receiver_checks_the_announced_size(tmp_path: Path) -> None:
    a, b = memory_pair()
    task = asyncio.create_task(ymodem.receive(b, tmp_path / "dst", **FAST))  # type: ignore[arg-type]
    assert await a.read(1, 2) == bytes([CRC])
    await a.write(header_block("x.bin", 5000, 0, 0o644, 1, 5000, True))
    assert await a.read(1, 2) == bytes([ACK])
    assert await a.read(1, 2) == bytes([CRC])
    await a.write(packet(1, b"z" * 1024, 1024, True))
    assert await a.read(1, 2) == bytes([ACK])
    await a.write(bytes([EOT]))
    assert await a.read(1, 2) == bytes([NAK])
    await a.write(bytes([EOT]))
    with pytest.raises(YmodemError, match=r"^x.bin ended after 1024 of 5000 bytes$"):
        await task


# -- the sender against a scripted receiver ----------------------------------------------------


async def test_sender_resends_after_nak_and_gives_up_after_retries(tmp_path: Path) -> None:
    files = make_files(tmp_path / "src", [2000])
    a, b = memory_pair()
    task = asyncio.create_task(ymodem.send(a, files, timeout=1, retries=3, pace=0))
    await b.write(bytes([CRC]))
    header = await b.read(2000, 2)
    assert header[:3] == b"\x01\x00\xff" and b"file-2000.bin\x002000 " in header
    await b.write(bytes([ACK, CRC]))
    first = await b.read(2000, 2)
    for _ in range(2):
        await b.write(bytes([NAK]))
        assert await b.read(2000, 2) == first  # the same block again
    await b.write(bytes([NAK]))
    with pytest.raises(YmodemError, match=r"^the device refused block 1 of file-2000.bin 3 times$"):
        await task


async def test_sender_does_not_fail_on_an_unanswered_end_of_batch(tmp_path: Path) -> None:
    files = make_files(tmp_path / "src", [100])
    a, b = memory_pair()
    task = asyncio.create_task(ymodem.send(a, files, timeout=0.2, retries=5, pace=0))
    await b.write(bytes([CRC]))
    assert (await b.read(2000, 1))[:3] == b"\x01\x00\xff"  # the header
    await b.write(bytes([ACK]))
    await b.write(bytes([CRC]))
    assert (await b.read(2000, 1))[:3] == b"\x01\x01\xfe"  # block 1
    await b.write(bytes([ACK]))
    assert await b.read(1, 1) == bytes([EOT])
    await b.write(bytes([NAK]))
    assert await b.read(1, 1) == bytes([EOT])
    await b.write(bytes([ACK]))
    await b.write(bytes([CRC]))
    assert (await b.read(200, 1))[:3] == b"\x01\x00\xff"  # the end of the batch, never ACKed
    start = time.monotonic()
    await asyncio.wait_for(task, 2)  # every file was acknowledged: no error
    assert time.monotonic() - start < 1


def test_header_parsing_and_names() -> None:
    block = header_block("fw.bin", 1234, 0o17, 0o100644, 2, 5000, True)
    data = block[3:-2]
    header = parse_header(data)
    assert header is not None
    assert (header.raw_name, header.size, header.mtime, header.files_left) == (
        "fw.bin",
        1234,
        15,
        2,
    )
    assert parse_header(b"\0" * 128) is None
    bare = parse_header(b"only-name\0" + b"\0" * 118)
    assert bare is not None and bare.size is None
    with pytest.raises(YmodemError, match=r"not valid YMODEM"):
        parse_header(b"x\0twelve\0")
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("C:\\fw\\app.bin") == "app.bin"
    assert safe_name("bad\x00\x07name") == "badname"
    for bad in ("", ".", "..", "a/..", "dir/", "x" * 300):
        assert safe_name(bad) is None
