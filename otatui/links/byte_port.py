"""Async byte ports: what the serial link and YMODEM talk through.

`BytePort` is the protocol (read with a timeout, write all, read a line, drop buffered input,
close). Implementations, all driven by the running asyncio loop, no threads:

- `FdPort(fd, name=...)` wraps an already-open file descriptor (a pty master from
  `os.openpty()`, a pipe end, a socket): made non-blocking, reads driven by `loop.add_reader`,
  writes by non-blocking `os.write` plus `loop.add_writer` when the kernel buffer is full.
  Construct it inside the running loop. It closes the fd on `aclose()` unless `owns_fd=False`.
- `SerialPort.open(path, baud)` opens a serial device (or a pty slave path) with pyserial
  (raw 8N1, no flow control, exclusive lock) and then behaves as an `FdPort` on its fd.
- `memory_pair()` gives two connected in-memory ports for unit tests.

A port raises `PortClosed` (a `LinkError`) once the other side went away and everything it sent
has been read, and for any read or write after `aclose()`. `LinkError` carries one human line,
e.g. "cannot open /dev/ttyUSB0: permission denied".

Additions to the session plan's API: `FdPort`, `LinkError`, the `name` attribute of every port
(used in messages), and `PortClosed` being a `LinkError`. One reader at a time per port.
The `timeout` parameters are the plan's API (hence `noqa: ASYNC109`): a read that times out
returns b"" / None instead of raising, which `asyncio.timeout` cannot express.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import termios
from typing import Protocol, runtime_checkable

import serial

__all__ = ["BytePort", "FdPort", "LinkError", "PortClosed", "SerialPort", "memory_pair"]

_CHUNK = 65536
_HIGH_WATER = 1 << 20  # stop reading the fd while this much input waits unread
_GONE_ERRNOS = frozenset({errno.EIO, errno.EPIPE, errno.EBADF, errno.ENXIO, errno.ECONNRESET})


class LinkError(Exception):
    """A local link failed; str() is one human line."""


class PortClosed(LinkError):
    """The other side of the port went away (or the port was closed here)."""


@runtime_checkable
class BytePort(Protocol):
    async def read(self, size: int, timeout: float) -> bytes:  # noqa: ASYNC109
        """1..size bytes; b"" if none arrived within `timeout` seconds (0: just poll)."""
        ...

    async def write(self, data: bytes) -> None:
        """Write all of `data` (handed to the kernel / the peer)."""
        ...

    async def readline(self, timeout: float, limit: int = 65536) -> bytes | None:  # noqa: ASYNC109
        """One line including b"\\n"; None on timeout (a partial line stays buffered)."""
        ...

    def discard_input(self) -> None:
        """Drop everything received and not yet read."""
        ...

    async def aclose(self) -> None: ...


class _BufferedPort:
    """Input buffering, timeouts and end-of-stream shared by the port implementations."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop = asyncio.get_running_loop()
        self._buf = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False  # the other side went away (after the buffered data)
        self._closed = False  # closed here
        self._failure = ""  # why reading ended, when it was not the other side closing

    # -- fed by the implementation ------------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        self._buf += data
        self._wake()

    def _feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _consumed(self) -> None:
        """Hook: input was taken out of the buffer (flow control)."""

    def _gone(self) -> PortClosed:
        if self._closed:
            return PortClosed(f"{self.name} is closed")
        return PortClosed(self._failure or f"the other side of {self.name} went away")

    async def _wait(self, delay: float) -> None:
        if self._waiter is not None:
            raise RuntimeError(f"two readers on {self.name}")
        waiter = self._loop.create_future()
        self._waiter = waiter
        timer = self._loop.call_later(delay, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    # -- the BytePort API ---------------------------------------------------------------------
    async def read(self, size: int, timeout: float) -> bytes:  # noqa: ASYNC109
        if size <= 0:
            raise ValueError("read size must be positive")
        buf = self._buf
        if not buf:
            if self._eof or self._closed:
                raise self._gone()
            if timeout > 0:
                await self._wait(timeout)
            if not buf:
                if self._eof or self._closed:
                    raise self._gone()
                return b""
        if size >= len(buf):
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:size])
            del buf[:size]
        self._consumed()
        return data

    async def readline(self, timeout: float, limit: int = 65536) -> bytes | None:  # noqa: ASYNC109
        buf = self._buf
        deadline = self._loop.time() + timeout
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end >= 0:
                if end >= limit:
                    raise LinkError(f"a line longer than {limit} bytes came from {self.name}")
                line = bytes(buf[: end + 1])
                del buf[: end + 1]
                self._consumed()
                return line
            if len(buf) > limit:
                raise LinkError(f"a line longer than {limit} bytes came from {self.name}")
            if self._eof or self._closed:
                raise self._gone()
            start = len(buf)
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                return None
            await self._wait(remaining)

    def discard_input(self) -> None:
        self._buf.clear()
        self._consumed()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class FdPort(_BufferedPort):
    """A BytePort on an open file descriptor (pty master, pipe, socket), see the module doc."""

    def __init__(self, fd: int, *, name: str = "", owns_fd: bool = True) -> None:
        super().__init__(name or f"fd {fd}")
        self._fd = fd
        self._owns_fd = owns_fd
        os.set_blocking(fd, False)
        self._reading = False
        self._writer: asyncio.Future[None] | None = None
        self._resume_reading()

    @property
    def fd(self) -> int:
        return self._fd

    def _resume_reading(self) -> None:
        if not self._reading and not self._eof and not self._closed:
            self._loop.add_reader(self._fd, self._on_readable)
            self._reading = True

    def _pause_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, _CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # EIO when the other side closed; anything else ends it too
            if exc.errno not in _GONE_ERRNOS:
                self._failure = f"cannot read from {self.name}: {_reason(exc.errno)}"
            data = b""
        if not data:
            self._pause_reading()
            self._feed_eof()
            return
        self._feed(data)
        if len(self._buf) >= _HIGH_WATER:
            self._pause_reading()

    def _consumed(self) -> None:
        if not self._reading and len(self._buf) < _HIGH_WATER // 2:
            self._resume_reading()

    def discard_input(self) -> None:
        self._buf.clear()
        if self._closed or self._eof:
            return
        while True:  # also what the kernel holds already (the reader sees any end of stream)
            try:
                if not os.read(self._fd, _CHUNK):
                    break
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno not in _GONE_ERRNOS:
                    raise
                self._pause_reading()
                self._feed_eof()
                return
        self._resume_reading()

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._closed or self._eof:
                raise self._gone()
            try:
                sent = os.write(self._fd, view)
            except (BlockingIOError, InterruptedError):
                await self._wait_writable()
                continue
            except OSError as exc:
                if exc.errno in _GONE_ERRNOS:
                    raise PortClosed(f"the other side of {self.name} went away") from None
                raise LinkError(f"cannot write to {self.name}: {_reason(exc.errno)}") from None
            view = view[sent:]

    async def _wait_writable(self) -> None:
        waiter = self._loop.create_future()
        self._writer = waiter
        self._loop.add_writer(self._fd, _resolve, waiter)
        try:
            await waiter
        finally:
            self._writer = None
            if not self._closed:
                self._loop.remove_writer(self._fd)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pause_reading()
        if self._writer is not None:
            self._loop.remove_writer(self._fd)
            _resolve(self._writer)
        self._wake()
        self._close_fd()

    def _close_fd(self) -> None:
        if self._owns_fd:
            with contextlib.suppress(OSError):
                os.close(self._fd)


class SerialPort(FdPort):
    """A serial device (or pty slave path) opened with pyserial, driven as an FdPort."""

    def __init__(self, device: serial.Serial, path: str) -> None:
        self._serial = device
        super().__init__(device.fd, name=path, owns_fd=False)

    @classmethod
    async def open(cls, path: str, baud: int = 115200) -> SerialPort:
        try:
            device = serial.Serial(port=path, baudrate=baud, timeout=0, exclusive=True)
        except serial.SerialException as exc:
            code = getattr(exc, "errno", None)
            reason = _reason(code) if code else "not a serial port"
            raise LinkError(f"cannot open {path}: {reason}") from None
        except ValueError:
            raise LinkError(f"cannot open {path}: unsupported baud rate {baud}") from None
        except OSError as exc:
            raise LinkError(f"cannot open {path}: {_reason(exc.errno)}") from None
        try:
            # pyserial leaves VMIN=0, where a read with no data returns b"" like end of file;
            # VMIN=1 makes it EAGAIN, so b"" means the device went away.
            attrs = termios.tcgetattr(device.fd)
            attrs[6][termios.VMIN] = 1
            attrs[6][termios.VTIME] = 0
            termios.tcsetattr(device.fd, termios.TCSANOW, attrs)
        except termios.error:
            device.close()
            raise LinkError(f"cannot open {path}: not a serial port") from None
        return cls(device, path)

    def _close_fd(self) -> None:
        with contextlib.suppress(OSError, serial.SerialException):
            self._serial.close()


def _reason(code: int | None) -> str:
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if code in (errno.EAGAIN, errno.EBUSY):
        return "in use by another program"
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return "no such device"
    if code is None:
        return "unknown error"
    text = os.strerror(code)
    return text[:1].lower() + text[1:]


class _MemoryPort(_BufferedPort):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.peer: _MemoryPort | None = None

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise self._gone()
        peer = self.peer
        if peer is None or peer._closed:
            raise PortClosed(f"the other side of {self.name} went away")
        if data:
            peer._feed(bytes(data))
        await asyncio.sleep(0)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake()
        if self.peer is not None:
            self.peer._feed_eof()


def memory_pair(
    names: tuple[str, str] = ("memory port a", "memory port b"),
) -> tuple[BytePort, BytePort]:
    """Two connected in-memory ports (what one writes, the other reads). Call inside the loop."""
    a, b = _MemoryPort(names[0]), _MemoryPort(names[1])
    a.peer, b.peer = b, a
    return a, b
