"""YMODEM on the wire: control bytes, block framing, the block-0 header, shared endpoint logic.

Used by `otatui.links.ymodem` (the sender and the public API) and `ymodem_receiver`; import the
public names (`YmodemError`, `FileProgress`, `ReceivedFile`) from `otatui.links.ymodem`.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from otatui.links.byte_port import BytePort, LinkError, PortClosed

SOH, STX, EOT, ACK, NAK, CAN, CRC = 0x01, 0x02, 0x04, 0x06, 0x15, 0x18, 0x43
CANCEL = bytes([CAN]) * 8  # lrzsz sends a run of CANs so that one pair surely gets through
BLOCK, SHORT_BLOCK = 1024, 128
MAX_NAME = 255
EOF_MARK = -3  # Endpoint.block while the end of a file (EOT) is exchanged
T = TypeVar("T")


class YmodemError(LinkError):
    """A YMODEM transfer failed; str() is one line naming the file and the block."""

    def __init__(self, message: str, *, by_peer: bool = False) -> None:
        super().__init__(message)
        self.by_peer = by_peer  # the other side cancelled (no CANs to send back)


@dataclass(frozen=True, slots=True)
class FileProgress:
    name: str
    index: int  # position in the batch, from 0
    count: int  # files in the batch (receiver: from the header's files-left field, else 0)
    done: int  # bytes so far
    total: int  # bytes of this file (0 when the sender did not say)


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    name: str  # the sanitised name
    path: Path
    size: int


ProgressCallback = Callable[[FileProgress], None]


def packet(number: int, data: bytes, size: int, crc: bool, pad: bytes = b"\x1a") -> bytes:
    """One framed block: SOH/STX, number, its complement, `data` padded to `size`, check."""
    if len(data) < size:
        data += pad * (size - len(data))
    n = number & 0xFF
    head = bytes((STX if size == BLOCK else SOH, n, 0xFF - n))
    if crc:
        return head + data + binascii.crc_hqx(data, 0).to_bytes(2, "big")
    return head + data + bytes((sum(data) & 0xFF,))


def check_ok(data: bytes, check: bytes) -> bool:
    if len(check) == 2:
        return binascii.crc_hqx(data, 0) == int.from_bytes(check, "big")
    return (sum(data) & 0xFF) == check[0]


def header_block(
    name: str, size: int, mtime: int, mode: int, files_left: int, bytes_left: int, crc: bool
) -> bytes:
    """Block 0 as lrzsz writes it: name NUL "size mtime mode serial files-left bytes-left"."""
    info = f"{size} {mtime:o} {mode:o} 0 {files_left} {bytes_left}"
    body = name.encode() + b"\0" + info.encode() + b"\0"
    if len(body) > BLOCK:
        raise YmodemError(f"the name {name[:40]!r}… is too long for a YMODEM header")
    return packet(0, body, SHORT_BLOCK if len(body) <= SHORT_BLOCK else BLOCK, crc, b"\0")


def end_of_batch(crc: bool) -> bytes:
    return packet(0, b"", SHORT_BLOCK, crc, b"\0")


@dataclass(frozen=True, slots=True)
class Header:
    raw_name: str
    size: int | None
    mtime: int | None
    files_left: int | None


def parse_header(data: bytes) -> Header | None:
    """Block 0's content; None for the empty block that ends the batch."""
    if not data or data[0] == 0:
        return None
    nul = data.find(b"\0")
    name_bytes = data[:nul] if nul >= 0 else data
    rest = data[nul + 1 :] if nul >= 0 else b""
    end = rest.find(b"\0")
    fields = (rest[:end] if end >= 0 else rest).decode("ascii", "replace").split()
    try:
        size = int(fields[0]) if fields else None
        mtime = int(fields[1], 8) if len(fields) > 1 else None
        left = int(fields[4]) if len(fields) > 4 else None
    except ValueError:
        raise YmodemError(
            f"the header of {name_bytes[:60].decode('utf-8', 'replace')!r} is not valid YMODEM"
        ) from None
    if size is not None and size < 0:
        raise YmodemError("the YMODEM header announces a negative size")
    return Header(name_bytes.decode("utf-8", "replace"), size, mtime, left)


def safe_name(raw: str) -> str | None:
    """The basename of a received name, without control characters; None if nothing is left."""
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    if base in ("", ".", "..") or len(base.encode()) > MAX_NAME:
        return None
    return base


class Endpoint:
    """What both sides share: reading control bytes, CAN detection, aborting, error context."""

    def __init__(self, port: BytePort, timeout: float, retries: int, peer: str) -> None:
        if timeout <= 0 or retries < 1:
            raise ValueError("YMODEM needs a positive timeout and at least one try")
        self.port = port
        self.timeout = timeout
        self.retries = retries
        self.peer = peer
        self.file = ""
        self.block = -1  # -1: before `file`; 0: its header; 1..: data; EOF_MARK; -2: batch end
        self.loop = asyncio.get_running_loop()
        self.last_rx = self.loop.time()

    verb = "sending"

    def label(self) -> str:
        """What is being exchanged: "block 37 of firmware.bin", "the header of ...", ..."""
        if self.block == -2:
            return "the end of the batch"
        if self.block == 0:
            return f"the header of {self.file}"
        if self.block == EOF_MARK:
            return f"the end of {self.file}"
        return f"block {self.block} of {self.file}"

    def where(self) -> str:
        if self.block == -1:
            return f"before {self.file}" if self.file else "before the first file"
        return f"while {self.verb} {self.label()}"

    def silent_for(self) -> str:
        return f"{self.loop.time() - self.last_rx:.0f} s"

    async def control(self, wait: float) -> int | None:
        """The next byte from the peer within `wait` s (None if silent); CAN CAN raises."""
        data = await self.port.read(1, wait)
        if not data:
            return None
        self.last_rx = self.loop.time()
        if data[0] == CAN:
            await self.check_cancel()
            return None
        return data[0]

    async def check_cancel(self) -> None:
        """A CAN arrived: a second one within a second means the peer cancelled."""
        data = await self.port.read(1, min(self.timeout, 1.0))
        if data and data[0] == CAN:
            raise YmodemError(f"{self.peer} cancelled the transfer {self.where()}", by_peer=True)

    async def abort(self) -> None:
        """Best effort: tell the peer to stop (CAN CAN ...)."""
        with contextlib.suppress(LinkError, OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await self.port.write(CANCEL)

    async def write(self, data: bytes) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await self.port.write(data)
        except TimeoutError:
            raise YmodemError(
                f"{self.peer} stopped reading for {self.timeout:g} s {self.where()}"
            ) from None


async def guarded(endpoint: Endpoint, work: Awaitable[T]) -> T:
    """Run a transfer: CANs to the peer when we stop it, context on a closed port."""
    try:
        return await work
    except PortClosed as exc:
        raise PortClosed(f"{exc} {endpoint.where()}".rstrip()) from None
    except YmodemError as exc:
        if not exc.by_peer:
            await endpoint.abort()
        raise
    except (asyncio.CancelledError, Exception):  # cancelled, a failing callback, a disk error
        await endpoint.abort()
        raise
