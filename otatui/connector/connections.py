"""The tasks serving one listener's connections, kept so that stopping can end them all."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class Connections:
    """`with connections.serving():` around a connection's top-level coroutine registers its
    task; `close_all()` cancels every one still running and waits for them."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        task = asyncio.current_task()
        assert task is not None, "a connection is served by a task"
        self._tasks.add(task)
        try:
            yield
        finally:
            self._tasks.discard(task)

    async def close_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
