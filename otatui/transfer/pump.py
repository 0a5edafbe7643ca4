"""One response body from the socket to the partial file at full speed, off the event loop.

Three threads, each doing one thing, pass a small pool of fixed buffers (page-aligned anonymous
mmaps, ``BUFFERS`` x ``BUFFER_BYTES``) along a chain of queues::

    receiver (the caller)  --filled-->  writer  --written-->  hasher  --> back to the pool

- the **receiver** fills a buffer with ``readinto`` (``recv_into`` on the socket: no per-chunk
  objects) until it is full, the body ends, or ``HANDOFF_S`` passed since its first byte (so a
  slow download reaches the disk steadily, and a kill -9 loses little);
- the **writer** writes it at its offset. A full buffer at an aligned offset goes through a
  second descriptor opened with ``O_DIRECT`` when the file system allows it: the bytes go to
  the device without passing through the page cache, which on this kind of machine costs more
  CPU than the copy itself (0.3-2 s per GiB) and competes with hashing for the two cores. The
  rest (a resumed offset, the last piece) is written through the ordinary descriptor;
- the **hasher** feeds exactly the bytes the writer put on disk to sha256 (``hashlib`` releases
  the GIL for big buffers), then counts them in ``written``.

So ``written`` bytes are always on disk *and* hashed, even after a write fails half-way (the
writer hands on what it wrote; the hasher sees no more): the invariant of
:class:`~otatui.transfer.partial.PartialFile` holds. Memory is the buffer pool, whatever the
file size. Threads: the caller's plus two, for the time of one body.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

ALIGN = 4096
"""O_DIRECT alignment of offsets, lengths and buffer addresses (covers 512 and 4096 sectors)."""
BUFFER_BYTES = 4 << 20
BUFFERS = 4
HANDOFF_S = 0.1
O_DIRECT: int = getattr(os, "O_DIRECT", 0)

Buffer = bytes | memoryview
WriteV = Callable[[int, Sequence[Buffer]], int]
"""``os.writev``'s shape; replaceable for fault injection (e.g. a disk that fills up)."""

_Block = tuple[mmap.mmap, int, int]
"""A buffer, the file offset of its first byte, and how many of its bytes count."""


class Body(Protocol):
    """What the pump reads from (:class:`~otatui.transfer.raw_response.RawResponse`)."""

    def readinto(self, view: memoryview) -> int: ...

    def abort(self) -> None: ...


class BodyPump:
    """Moves one body into the file at ``offset``: :meth:`run` on a worker thread."""

    def __init__(
        self,
        body: Body,
        *,
        fd: int,
        path: Path,
        offset: int,
        update: Callable[[memoryview], object],
        writev: WriteV = os.writev,
        direct: bool = True,
        buffers: int = BUFFERS,
        buffer_bytes: int = BUFFER_BYTES,
    ) -> None:
        if buffers < 3 or buffer_bytes < ALIGN or buffer_bytes % ALIGN:
            raise ValueError("at least 3 buffers, each a multiple of 4096 bytes")
        self._body = body
        self._fd = fd
        self._path = path
        self._update = update
        self._writev = writev
        self._direct = direct and O_DIRECT != 0
        self._direct_fd = -1
        self._buffers = buffers
        self._buffer_bytes = buffer_bytes
        self._stop = threading.Event()
        self._free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        self._to_write: queue.SimpleQueue[_Block | None] = queue.SimpleQueue()
        self._to_hash: queue.SimpleQueue[_Block | None] = queue.SimpleQueue()
        self._write_error: OSError | None = None
        self.received = offset
        """File offset up to which bytes came from the socket (readable from any thread)."""
        self.written = offset
        """File offset up to which bytes are on disk and hashed (readable from any thread)."""
        self.direct_bytes = 0
        """How many bytes went through the O_DIRECT descriptor (for tests and benchmarks)."""

    def stop(self) -> None:
        """Finish soon, keeping every byte received so far. Thread-safe.

        :meth:`run` then returns normally (the body's error from the cut is not one), unless
        a write failed.
        """
        self._stop.set()
        self._body.abort()

    def run(self) -> None:
        """Receive until the body ends (or :meth:`stop`); return once all is written and hashed.

        Raises the writer's ``OSError`` first (disk full...), else the body's error (network).
        """
        pool = [mmap.mmap(-1, self._buffer_bytes) for _ in range(self._buffers)]
        for buf in pool:
            self._free.put(buf)
        self._direct_fd = self._open_direct()
        writer = threading.Thread(target=self._writer, name="otatui-download-write", daemon=True)
        hasher = threading.Thread(target=self._hasher, name="otatui-download-hash", daemon=True)
        writer.start()
        hasher.start()
        try:
            self._receive()
        finally:
            self._to_write.put(None)
            writer.join()
            hasher.join()
            if self._direct_fd >= 0:
                os.close(self._direct_fd)
                self._direct_fd = -1
            for buf in pool:
                with contextlib.suppress(BufferError):  # a view still alive: freed by the GC
                    buf.close()
            if self._write_error is not None:
                raise self._write_error

    # -- the three stages -----------------------------------------------------------------------

    def _receive(self) -> None:
        while not self._stop.is_set():
            buf = self._free.get()
            start = self.received
            target = len(buf) - start % ALIGN  # so that the next buffer starts aligned
            filled = 0
            ended = False
            try:
                with memoryview(buf) as view:
                    deadline = time.monotonic() + HANDOFF_S
                    while filled < target and not self._stop.is_set():
                        try:
                            n = self._body.readinto(view[filled:target])
                        except Exception:
                            if not self._stop.is_set():
                                raise
                            n = 0  # the cut :meth:`stop` asked for, not a network error
                        if n == 0:
                            ended = True
                            break
                        filled += n
                        self.received += n
                        if time.monotonic() >= deadline:
                            break
            finally:
                if filled:
                    self._to_write.put((buf, start, filled))
                else:
                    self._free.put(buf)
            if ended:
                return

    def _writer(self) -> None:
        while (block := self._to_write.get()) is not None:
            buf, start, size = block
            done = 0
            if self._write_error is None:
                try:
                    with memoryview(buf) as view:
                        while done < size:
                            done += self._write_some(view[done:size], start + done, done)
                except OSError as exc:
                    self._write_error = exc
                    self._stop.set()
                    self._body.abort()
            self._to_hash.put((buf, start, done))  # exactly what is on disk
        self._to_hash.put(None)

    def _hasher(self) -> None:
        while (block := self._to_hash.get()) is not None:
            buf, _start, size = block
            if size:
                with memoryview(buf) as view:
                    self._update(view[:size])
            self.written += size
            self._free.put(buf)

    # -- writing --------------------------------------------------------------------------------

    def _write_some(self, view: memoryview, offset: int, index: int) -> int:
        """Write some of ``view`` (buffer bytes from ``index`` on) at file ``offset``."""
        direct = (
            self._direct_fd >= 0
            and offset % ALIGN == 0
            and index % ALIGN == 0  # the buffer itself is page-aligned
            and len(view) % ALIGN == 0
        )
        fd = self._direct_fd if direct else self._fd
        os.lseek(fd, offset, os.SEEK_SET)
        try:
            n = self._writev(fd, [view])
        except OSError as exc:
            if direct and exc.errno == errno.EINVAL:  # alignment this device does not take
                os.close(self._direct_fd)
                self._direct_fd = -1
                return 0  # written again through the ordinary descriptor
            raise
        if n <= 0:
            raise OSError(errno.EIO, "the write made no progress")
        if direct:
            self.direct_bytes += n
        return n

    def _open_direct(self) -> int:
        if not self._direct:
            return -1
        try:
            return os.open(self._path, os.O_WRONLY | O_DIRECT | getattr(os, "O_CLOEXEC", 0))
        except OSError:  # tmpfs and some others refuse O_DIRECT: the ordinary path it is
            return -1
