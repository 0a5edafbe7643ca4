"""The data dir's lock: one process at a time sends a store's outbox.

`otatui run` (and the TUI) hold it while their engine runs; `otatui sync` takes it for the time
of its sync. Without it, a sync while the engine runs could send the same outbox rows twice
(both read them before either confirmed them) and, over MQTT, the second connection of one
device would kick the first. The lock is an advisory ``flock`` on ``<data dir>/otatui.lock``:
the kernel releases it when the holder dies, so a crash never leaves a stale lock. The file
holds the holder's pid and what it is, for the message the next one gets.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Self

from otatui.store.rows import StoreError

LOCK_NAME = "otatui.lock"


class DataDirBusy(StoreError):
    """Another otatui process holds the data dir's lock; ``str()`` says which and what to do."""


class DataDirLock:
    """Held with ``with DataDirLock(data_dir, "otatui run"):`` or `acquire()` / `release()`."""

    def __init__(self, data_dir: Path, holder: str) -> None:
        self.path = data_dir / LOCK_NAME
        self.holder = holder
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock now or raise `DataDirBusy` (never waits)."""
        if self._fd is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"lock {self.path}: cannot open: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = _read(fd)
            os.close(fd)
            who = other or "another otatui process"
            raise DataDirBusy(
                f"{who} is already using the data dir {self.path.parent} and sends its outbox"
                f" itself; stop it before running {self.holder}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{self.holder} (pid {os.getpid()})".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor releases the flock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _read(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace")
    except OSError:
        return ""
    return " ".join(text.split())
