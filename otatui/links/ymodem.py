"""YMODEM batch transfers over a `BytePort`: what the serial link sends its files with.

    await send(port, [("firmware.bin", path)], on_progress=cb)      # -> None
    files = await receive(port, folder, max_size=64 << 20)          # -> [ReceivedFile]

YMODEM as lrzsz speaks it (interoperates with `sz --ymodem` and `rz --ymodem` both ways):

- The receiver asks with "C" (CRC-16/XMODEM; NAK asks for the 8-bit checksum, `crc=False`).
- Block 0 carries `name NUL size mtime mode 0 files-left bytes-left` (decimal size, octal mtime
  and mode); the receiver ACKs it and asks again with "C". An empty block 0 ends the batch.
- Data blocks are STX + 1024 bytes (a tail of at most 128 bytes goes in a SOH 128-byte block),
  padded with 0x1A; the receiver truncates to the size from block 0. It accepts either size.
- The end of a file is EOT: the receiver NAKs the first EOT and ACKs the second, as lrzsz does.
- The sender does not fail when the end-of-batch block goes unanswered (two silent tries): every
  file was acknowledged already, and a receiver that has ended may not answer.
- CAN CAN from either side aborts. When we stop a transfer (task cancelled, or an error on our
  side) we send CANs first.

Pacing and late answers: lrzsz's `rz` sends each ACK and then flushes its input (TCIFLUSH); a
block that arrives in between is lost, and rz only NAKs after 5-13 s. Over a pty pair `sz`
itself hits that race every few dozen blocks. So the sender (1) pauses `pace` seconds before each
block (default 0.2 ms, a blocking sleep below 2 ms since asyncio timers are ~1 ms coarse; noise
on a real line, where a 1K block takes ~90 ms at 115200 baud; `pace=0` turns it off), and (2)
sends a data block again when its answer is late (20 smoothed round trips, at least 50 ms, at
most `timeout / 4`, then at doubling intervals; not counted as a failure). After such a repeat it
waits that long again and drops what came in, so the ACK of a second copy cannot be taken for
the next block's (the receiver ACKs repeats, as YMODEM wants).

Timeouts: `timeout` is how long to wait for each answer. The sender resends a block after a NAK
or after `timeout` of silence; the receiver NAKs after `timeout / 2` of silence or a damaged
block; either side gives up after `retries` failures in a row, with one line saying what, which
file and which block (data blocks count from 1, the header is block 0), e.g. "no answer from the
device for 30 s while sending block 37 of firmware.bin". `start_timeout` bounds the wait for
the other side to begin.

The receiver keeps only the basename of a received name (refusing "", "." and ".."), refuses
files above `max_size`, writes `.NAME.part` and renames it when complete; partial files are
removed when a transfer fails.

Errors: `YmodemError` (a `LinkError`) for protocol failures and cancellation by the peer;
`PortClosed` when the port went away (its message then says which file and block).
Additions to the session plan's API: the `peer` wording used in messages ("the device",
"the sender"), the sender's `pace` and the receiver's `crc` switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from pathlib import Path

from otatui.links.byte_port import BytePort, PortClosed
from otatui.links.ymodem_receiver import Receiver
from otatui.links.ymodem_wire import (
    ACK,
    BLOCK,
    CRC,
    EOF_MARK,
    EOT,
    NAK,
    SHORT_BLOCK,
    Endpoint,
    FileProgress,
    ProgressCallback,
    ReceivedFile,
    YmodemError,
    end_of_batch,
    guarded,
    header_block,
    packet,
)

__all__ = ["FileProgress", "ProgressCallback", "ReceivedFile", "YmodemError", "receive", "send"]

_EOT = bytes((EOT,))


async def send(
    port: BytePort,
    files: Sequence[tuple[str, Path]],
    *,
    on_progress: ProgressCallback | None = None,
    timeout: float = 10.0,  # noqa: ASYNC109 (per answer, see the module doc)
    retries: int = 10,
    start_timeout: float = 60.0,
    peer: str = "the device",
    pace: float = 0.0002,
) -> None:
    """Send `files` (the name the receiver sees, the local path) as one YMODEM batch."""
    sender = _Sender(port, timeout, retries, peer)
    sender.pace = pace
    await guarded(sender, sender.run(files, on_progress, start_timeout))


async def receive(
    port: BytePort,
    folder: Path,
    *,
    on_progress: ProgressCallback | None = None,
    timeout: float = 10.0,  # noqa: ASYNC109 (per answer, see the module doc)
    retries: int = 10,
    start_timeout: float = 60.0,
    max_size: int | None = None,
    peer: str = "the sender",
    crc: bool = True,
) -> list[ReceivedFile]:
    """Receive one YMODEM batch into `folder`; the files in the order they came."""
    receiver = Receiver(port, timeout, retries, peer, folder, crc, max_size)
    return await guarded(receiver, receiver.run(on_progress, start_timeout))


class _Sender(Endpoint):
    pace = 0.0
    rtt: float | None = None  # smoothed ACK round trip of blocks sent once

    async def run(
        self,
        files: Sequence[tuple[str, Path]],
        on_progress: ProgressCallback | None,
        start_timeout: float,
    ) -> None:
        stats = []
        for _name, path in files:
            try:
                stats.append(path.stat())
            except OSError as exc:
                raise YmodemError(f"cannot read {path}: {exc.strerror or exc}") from None
        bytes_left = sum(st.st_size for st in stats)
        if files:
            self.file = files[0][0]
        crc = await self._wait_request(start_timeout)
        self.port.discard_input()  # repeated requests queued while we were not listening
        for index, ((name, path), st) in enumerate(zip(files, stats, strict=True)):
            self.file, self.block = name, 0
            header = header_block(
                name, st.st_size, int(st.st_mtime), st.st_mode, len(files) - index, bytes_left, crc
            )
            await self._send_file(path, header, st.st_size, index, len(files), crc, on_progress)
            bytes_left -= st.st_size
            self.block = -1
            self.file = files[index + 1][0] if index + 1 < len(files) else ""
            if self.file:
                crc = await self._wait_request(self.timeout)
        self.block = -2
        if files:
            crc = await self._wait_request(self.timeout)
        # Every file was acknowledged: a receiver that has ended may not answer the end of the
        # batch (lrzsz's rz exits and can flush its ACK on a pty); that is not a failure.
        with contextlib.suppress(PortClosed):
            await self._send_block(end_of_batch(crc), final=True)

    async def _send_file(
        self,
        path: Path,
        header: bytes,
        size: int,
        index: int,
        count: int,
        crc: bool,
        on_progress: ProgressCallback | None,
    ) -> None:
        name = self.file
        try:
            fh = path.open("rb")
        except OSError as exc:
            raise YmodemError(f"cannot read {path}: {exc.strerror or exc}") from None
        with fh:
            await self._send_block(header)
            await self._wait_request(self.timeout)  # the receiver asks for the data
            if on_progress is not None:
                on_progress(FileProgress(name, index, count, 0, size))
            done = 0
            number = 1
            while done < size:
                chunk = fh.read(min(BLOCK, size - done))
                if not chunk:
                    raise YmodemError(f"{path} got shorter while it was being sent")
                self.block = number
                size_of_block = SHORT_BLOCK if len(chunk) <= SHORT_BLOCK else BLOCK
                await self._send_block(packet(number, chunk, size_of_block, crc), nudge=True)
                done += len(chunk)
                number += 1
                if on_progress is not None:
                    on_progress(FileProgress(name, index, count, done, size))
        self.block = EOF_MARK
        await self._send_block(_EOT, extra_tries=1)  # lrzsz NAKs the first EOT

    async def _wait_request(self, wait: float) -> bool:
        """Wait for "C" (True: CRC-16) or NAK (False: checksum) from the receiver."""
        deadline = self.loop.time() + wait
        while (remaining := deadline - self.loop.time()) > 0:
            byte = await self.control(remaining)
            if byte == CRC:
                return True
            if byte == NAK:
                return False
        if self.block == -1:
            what = self.file or "a file"
        else:
            what = f"the data of {self.file}" if self.block == 0 else "the end of the batch"
        raise YmodemError(f"{self.peer} did not ask for {what} within {wait:g} s")

    async def _send_block(
        self, data: bytes, extra_tries: int = 0, final: bool = False, nudge: bool = False
    ) -> None:
        """Send until ACKed: again after a NAK or `timeout` of silence, `retries` times.

        `final` (the end of the batch): two silent tries are enough to stop waiting.
        `nudge` (data blocks): when the answer is late (20 round trips, at least 50 ms), send the
        block again, then at doubling intervals, without counting a failure; after such a
        repeat, answers to the copies that arrive shortly after the ACK are dropped."""
        failures = 0
        repeated = False
        while True:
            if self.pace >= 0.002:
                await asyncio.sleep(self.pace)
            elif self.pace > 0:
                _pause(self.pace)
            await self.write(data)
            sent = self.loop.time()
            deadline = sent + self.timeout
            wait = self.early if nudge and self.rtt is not None else self.timeout
            while True:
                reply = await self._reply(min(sent + wait, deadline))
                if reply is not None or self.loop.time() >= deadline:
                    break
                await self.write(data)  # lost in the receiver's flush, most likely
                repeated = True
                wait *= 2
            if reply == ACK:
                if not repeated:
                    sample = self.loop.time() - sent
                    self.rtt = sample if self.rtt is None else 0.8 * self.rtt + 0.2 * sample
                else:
                    await asyncio.sleep(self.early)
                    self.port.discard_input()  # the ACK of a second copy would desync us
                return
            failures += 1
            if final and reply is None and failures >= 2:
                return
            if failures >= self.retries + extra_tries:
                if reply is None:
                    raise YmodemError(
                        f"no answer from {self.peer} for {self.silent_for()} {self.where()}"
                    )
                raise YmodemError(f"{self.peer} refused {self.label()} {failures} times")
            if reply is None:
                self.port.discard_input()

    @property
    def early(self) -> float:
        """When a data block's answer counts as late: 20 round trips, 50 ms to `timeout / 4`."""
        rtt = self.rtt if self.rtt is not None else self.timeout
        return min(max(20 * rtt, 0.05), self.timeout / 4)

    async def _reply(self, deadline: float) -> int | None:
        """ACK or NAK before `deadline`; None if silent (other bytes are skipped)."""
        while (remaining := deadline - self.loop.time()) > 0:
            byte = await self.control(remaining)
            if byte in (ACK, NAK):
                return byte
        return None


def _pause(seconds: float) -> None:
    """A deliberate sub-millisecond blocking pause (asyncio timers cannot wait less than ~1 ms):
    it gives the CPU to a receiver that flushes its input right after each answer, so the next
    block does not arrive before that flush (see `pace` in the module doc)."""
    time.sleep(seconds)
