"""Disk faults for the transfer unit tests (import as `from disk_helpers import ...`)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence

Writev = Callable[[int, Sequence[bytes | memoryview]], int]


def disk_with_room(room: int) -> Writev:
    """A `writev` replacement for a disk that fills up after `room` bytes: it writes at most
    what is left of the first buffer, then fails with ENOSPC."""
    left = room

    def writev(fd: int, buffers: Sequence[bytes | memoryview]) -> int:
        nonlocal left
        if left == 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        head = memoryview(buffers[0])[:left]
        left -= len(head)
        return os.write(fd, head)

    return writev
