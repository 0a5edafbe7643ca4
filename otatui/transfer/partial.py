"""A partial download on disk with the running sha256 of exactly the bytes it holds.

Two ways in, both off the event loop:

- :meth:`PartialFile.receive` hands a whole response body read from a blocking socket
  (:class:`~otatui.transfer.raw_response.RawResponse`) to a :class:`~otatui.transfer.pump.BodyPump`
  on the worker threads: receive, write and hash run in parallel, the loop only samples progress;
- :meth:`PartialFile.write` takes chunks from the event loop (the httpx transport) in batches of
  about a megabyte, one batch in flight at a time on a worker thread that hashes (``hashlib``
  releases the GIL) and writes (``os.writev``) the previous batch.

Memory stays bounded (the pump's buffer pool, or two batches) whatever the file size.

Invariant: after every batch, the file holds ``written`` bytes and the hash has seen exactly
those bytes, even when a write fails half-way (disk full): a resume can always trust the file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import TypeVar

from otatui.transfer.pump import Body, BodyPump, Buffer, WriteV

BATCH_BYTES = 1 << 20
MAX_BATCH_BUFFERS = 256  # well under IOV_MAX (1024 on Linux)
READ_BLOCK = 4 << 20
FILE_MODE = 0o600

__all__ = ["Buffer", "PartialFile", "WriteV"]

T = TypeVar("T")


class PartialFile:
    """Append-only file + sha256; every call from the event loop, work on ``executor``."""

    def __init__(
        self,
        path: Path,
        executor: Executor,
        *,
        writev: WriteV = os.writev,
        direct_io: bool = True,
    ) -> None:
        self.path = path
        self._executor = executor
        self._writev = writev
        self._direct_io = direct_io
        self._fd = -1
        self._hash = hashlib.sha256()
        self._batch: list[bytes] = []
        self._batch_bytes = 0
        self._pending: Future[None] | None = None
        self._pump: BodyPump | None = None
        self._failed = False
        self._written = 0
        self.accepted = 0
        """Bytes handed to :meth:`write` or received by :meth:`receive` (on disk once flushed)."""

    @property
    def written(self) -> int:
        """Bytes on disk and hashed; updated by the workers, a safe lower bound at any time."""
        return self._pump.written if self._pump is not None else self._written

    # -- event-loop side ----------------------------------------------------------------------

    async def open(self, *, resume: bool) -> int:
        """Open (create) the file; with ``resume`` re-hash what it holds, else empty it."""
        await self._call(self._open_sync, resume)
        self.accepted = self._written
        return self._written

    async def write(self, chunk: bytes) -> None:
        self._batch.append(chunk)
        self._batch_bytes += len(chunk)
        self.accepted += len(chunk)
        if self._batch_bytes >= BATCH_BYTES or len(self._batch) >= MAX_BATCH_BUFFERS:
            await self._submit()

    async def receive(self, body: Body, tick: Callable[[], None], interval_s: float) -> None:
        """Append the whole of ``body`` (a blocking response) through a :class:`BodyPump`.

        The loop wakes every ``interval_s`` to update :attr:`accepted` and call ``tick``.
        Raises the pump's ``OSError`` (disk) or the body's error (network); either way, and on
        cancellation, every byte received before the end is on disk and hashed when it returns
        (on cancellation: when :meth:`close` returns).
        """
        await self.flush()
        pump = BodyPump(
            body,
            fd=self._fd,
            path=self.path,
            offset=self._written,
            update=self._hash.update,
            writev=self._writev,
            direct=self._direct_io,
        )
        self._pump = pump
        future = self._executor.submit(pump.run)
        self._pending = future  # close() waits for it, whatever happens here
        landed = asyncio.wrap_future(future)
        try:
            while not landed.done():
                await asyncio.wait([landed], timeout=interval_s)
                self.accepted = pump.received
                tick()
            await self._wait()
        except BaseException:
            pump.stop()
            # Nobody awaits ``landed`` any more: cancelled, it never takes the pump's outcome
            # (no "Future exception was never retrieved" later); close() waits for the pump.
            landed.cancel()
            raise
        finally:
            if landed.done() and not landed.cancelled():
                landed.exception()  # retrieved (raised through _wait): no "never retrieved" log
            if future.done():
                self._adopt_pump()

    def _adopt_pump(self) -> None:
        """Take over the pump's count once it has stopped; the descriptor's offset follows."""
        pump, self._pump = self._pump, None
        if pump is None:
            return
        self._written = pump.written
        self.accepted = self._written
        if self._fd >= 0:
            os.lseek(self._fd, self._written, os.SEEK_SET)

    async def flush(self) -> None:
        """Wait until everything accepted is on disk (raises the worker's ``OSError``)."""
        if self._batch:
            await self._submit()
        await self._wait()

    async def restart(self) -> None:
        """Empty the file and the hash (the server sent the whole file again)."""
        self._batch, self._batch_bytes = [], 0
        await self._call(self._truncate_sync)
        self.accepted = 0

    async def finish(self) -> str:
        """Flush, fsync, and return the hex sha256 of the whole file."""
        await self.flush()
        await self._call(os.fsync, self._fd)
        return self._hash.hexdigest()

    async def close(self) -> None:
        """Write out what was accepted (unless writing already failed), then close the file.

        Called on cancellation too: the batch in flight lands (never cut half-way) so the file
        and ``written`` agree for a later resume.
        """
        if self._batch and not self._failed:
            batch, self._batch, self._batch_bytes = self._batch, [], 0
            await self._settle()
            if not self._failed:
                self._pending = self._executor.submit(self._write_sync, batch)
        await self._settle()
        self._adopt_pump()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.accepted = self.written

    async def _settle(self) -> None:
        """Wait for the batch in flight whatever happens to it (no exception, no cancel)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        landed = asyncio.wrap_future(pending)
        await asyncio.wait([landed])
        if not landed.cancelled() and landed.exception() is not None:
            self._failed = True

    async def _submit(self) -> None:
        batch = self._batch
        self._batch, self._batch_bytes = [], 0
        await self._wait()
        self._pending = self._executor.submit(self._write_sync, batch)

    async def _wait(self) -> None:
        pending = self._pending
        if pending is not None:
            try:
                await asyncio.wrap_future(pending)
            except OSError:
                self._failed = True
                raise
            finally:
                if pending.done():  # still running only if we were cancelled: close() waits
                    self._pending = None

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        await self._wait()
        return await asyncio.wrap_future(self._executor.submit(fn, *args))

    # -- worker side --------------------------------------------------------------------------

    def _open_sync(self, resume: bool) -> None:
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(self.path, flags, FILE_MODE)
        if not resume:
            self._truncate_sync()
            return
        size = 0
        while block := os.pread(self._fd, READ_BLOCK, size):
            self._hash.update(block)
            size += len(block)
        os.lseek(self._fd, size, os.SEEK_SET)
        self._written = size

    def _truncate_sync(self) -> None:
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        self._hash = hashlib.sha256()
        self._written = 0

    def _write_sync(self, batch: list[bytes]) -> None:
        views: deque[Buffer] = deque(batch)
        while views:
            n = self._writev(self._fd, views)  # raises OSError (ENOSPC...) with nothing written
            while n:
                head = views[0]
                if len(head) <= n:
                    self._hash.update(head)
                    views.popleft()
                    n -= len(head)
                    self._written += len(head)
                else:
                    view = memoryview(head)
                    self._hash.update(view[:n])
                    views[0] = view[n:]
                    self._written += n
                    n = 0
