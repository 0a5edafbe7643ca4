"""The receiving side of YMODEM (see `otatui.links.ymodem` for the protocol and its rules)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO

from otatui.links.byte_port import BytePort
from otatui.links.ymodem_wire import (
    ACK,
    BLOCK,
    CAN,
    CRC,
    EOF_MARK,
    EOT,
    NAK,
    SHORT_BLOCK,
    SOH,
    STX,
    Endpoint,
    FileProgress,
    Header,
    ProgressCallback,
    ReceivedFile,
    YmodemError,
    check_ok,
    parse_header,
    safe_name,
)

_SILENT, _BAD, _EOT = "silent", "bad", "eot"
Packet = tuple[int, bytes] | str
_ACK, _NAK = bytes((ACK,)), bytes((NAK,))


class Receiver(Endpoint):
    verb = "receiving"

    def __init__(
        self,
        port: BytePort,
        timeout: float,
        retries: int,
        peer: str,
        folder: Path,
        crc: bool,
        max_size: int | None,
    ) -> None:
        super().__init__(port, timeout, retries, peer)
        self.folder = folder
        self.crc = crc
        self.max_size = max_size
        self.request = bytes((CRC if crc else NAK,))
        self.interval = timeout / 2  # NAK after this much silence
        self.partial: Path | None = None

    async def run(
        self, on_progress: ProgressCallback | None, start_timeout: float
    ) -> list[ReceivedFile]:
        received: list[ReceivedFile] = []
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            wait = start_timeout
            while True:
                header = await self._header(wait, first=not received)
                if header is None:
                    await self.write(_ACK)
                    self.block = -2
                    return received
                received.append(await self._file(header, len(received), on_progress))
                self.file, self.block = "", -1
                wait = self.interval * self.retries
        finally:
            if self.partial is not None:
                with contextlib.suppress(OSError):
                    self.partial.unlink()

    async def _header(self, wait: float, first: bool) -> Header | None:
        """Ask for block 0 until it comes (stray EOTs and data blocks are ACKed)."""
        deadline = self.loop.time() + wait
        failures = 0
        self.block = 0 if self.file else -1
        while (remaining := deadline - self.loop.time()) > 0:
            await self.write(self.request)
            pkt = await self._packet(min(self.interval, remaining))
            if pkt == _BAD:
                failures += 1
                if failures >= self.retries:
                    raise YmodemError(f"the YMODEM header arrived damaged {failures} times")
                await self._purge()
            elif pkt == _EOT:
                await self.write(_ACK)  # the sender repeats an EOT whose ACK it did not get
            elif isinstance(pkt, tuple):
                number, data = pkt
                if number == 0:
                    return parse_header(data)
                await self.write(_ACK)  # a repeated last data block
        what = "a file" if first else "the next file or the end of the batch"
        raise YmodemError(f"{self.peer} did not send {what} within {wait:g} s")

    async def _file(
        self, header: Header, index: int, on_progress: ProgressCallback | None
    ) -> ReceivedFile:
        name = safe_name(header.raw_name)
        if name is None:
            raise YmodemError(f"refused a file with the unusable name {header.raw_name[:60]!r}")
        self.file, self.block, size = name, 0, header.size
        if self.max_size is not None and size is not None and size > self.max_size:
            raise YmodemError(
                f"refused {name}: {size} bytes is more than the limit of {self.max_size}"
            )
        final = self.folder / name
        self.partial = self.folder / f".{name}.part"
        try:
            fh = self.partial.open("wb")
        except OSError as exc:
            raise YmodemError(f"cannot write {self.partial}: {exc.strerror or exc}") from None
        count = index + header.files_left if header.files_left else 0
        with fh:
            await self.write(_ACK)
            await self.write(self.request)
            if on_progress is not None:
                on_progress(FileProgress(name, index, count, 0, size or 0))
            written = await self._data(fh, size, index, count, on_progress)
        if size is not None and written < size:
            raise YmodemError(f"{name} ended after {written} of {size} bytes")
        os.replace(self.partial, final)
        self.partial = None
        if header.mtime:
            with contextlib.suppress(OSError, OverflowError):
                os.utime(final, (header.mtime, header.mtime))
        return ReceivedFile(name, final, written)

    async def _data(
        self,
        fh: BinaryIO,
        size: int | None,
        index: int,
        count: int,
        on_progress: ProgressCallback | None,
    ) -> int:
        """Receive the data blocks up to the second EOT; the number of bytes kept."""
        name = self.file
        expected, written, raw, failures, eot_seen = 1, 0, 0, 0, False
        self.block = 1
        while True:
            pkt = await self._packet(self.interval)
            if isinstance(pkt, tuple):
                number, data = pkt
                eot_seen = False
                if number == expected & 0xFF:
                    if size is not None:
                        if raw >= size + BLOCK:
                            raise YmodemError(f"{self.peer} sent more than the {size} bytes")
                        raw += len(data)
                        if written + len(data) > size:
                            data = data[: max(size - written, 0)]
                    elif self.max_size is not None and written + len(data) > self.max_size:
                        raise YmodemError(f"refused {name}: more than {self.max_size} bytes")
                    try:
                        fh.write(data)
                    except OSError as exc:
                        raise YmodemError(f"cannot write {name}: {exc.strerror or exc}") from None
                    written += len(data)
                    await self.write(_ACK)
                    expected += 1
                    self.block = expected
                    failures = 0
                    if on_progress is not None:
                        on_progress(FileProgress(name, index, count, written, size or 0))
                elif number == (expected - 1) & 0xFF:
                    await self.write(_ACK)  # a repeat: our ACK was lost
                    if expected == 1:
                        await self.write(self.request)
                else:
                    raise YmodemError(
                        f"block {number} came when {self.label()} was due (blocks out of order)"
                    )
            elif pkt == _EOT:
                if eot_seen:
                    self.block = EOF_MARK
                    await self.write(_ACK)
                    return written
                eot_seen = True
                await self.write(_NAK)
            else:
                failures += 1
                if failures >= self.retries:
                    if pkt == _SILENT:
                        raise YmodemError(
                            f"no data from {self.peer} for {self.silent_for()} {self.where()}"
                        )
                    raise YmodemError(f"{self.label()} arrived damaged {failures} times")
                if pkt == _BAD:
                    await self._purge()
                await self.write(self.request if expected == 1 else _NAK)

    async def _packet(self, wait: float) -> Packet:
        """One block (number, data), or _SILENT, _BAD (damaged/incomplete), _EOT."""
        port = self.port
        deadline = self.loop.time() + wait
        while True:
            remaining = deadline - self.loop.time()
            head = await port.read(1, remaining) if remaining > 0 else b""
            if not head:
                return _SILENT
            self.last_rx = self.loop.time()
            kind = head[0]
            if kind in (STX, SOH):
                break
            if kind == EOT:
                return _EOT
            if kind == CAN:
                await self.check_cancel()
            # anything else is line noise between blocks
        size = BLOCK if kind == STX else SHORT_BLOCK
        body = await self._read_exact(size + (4 if self.crc else 3))
        if body is None or body[0] + body[1] != 0xFF:
            return _BAD
        data = body[2 : 2 + size]
        if not check_ok(data, body[2 + size :]):
            return _BAD
        return body[0], data

    async def _read_exact(self, need: int) -> bytes | None:
        """`need` bytes, or None when the line goes quiet for a second (or `timeout`) first."""
        gap = min(self.timeout, 1.0)
        first = await self.port.read(need, gap)
        if len(first) == need:
            return first
        if not first:
            return None
        parts = [first]
        got = len(first)
        while got < need:
            part = await self.port.read(need - got, gap)
            if not part:
                return None
            parts.append(part)
            got += len(part)
        self.last_rx = self.loop.time()
        return b"".join(parts)

    async def _purge(self) -> None:
        """After a damaged block: drop input until the line is quiet (bounded by `timeout`)."""
        self.port.discard_input()
        quiet = min(self.timeout / 4, 0.1)
        deadline = self.loop.time() + self.timeout
        while self.loop.time() < deadline and await self.port.read(65536, quiet):
            pass
