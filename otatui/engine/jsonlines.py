"""The JSON-lines printer: one engine event per line (`otatui run --headless`).

Each line is a JSON object with at least `time`, `device` and `event`, followed by the event's own
fields. Progress events that pile up while the output is slow are coalesced (the latest value of
each file is printed). As a last line of defence, any configured secret that somehow reached an
event's text is replaced by `***` before the line is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from typing import TextIO

from otatui.engine.events import Event, EventBus, EventQueue
from otatui.engine.redaction import REDACTED, Redactor

__all__ = ["REDACTED", "JsonLinesPrinter", "event_line"]


def event_line(event: Event, secrets: Iterable[str] | Redactor = ()) -> str:
    line = json.dumps(event.to_dict(), ensure_ascii=False, separators=(",", ":"), default=str)
    redact = secrets if isinstance(secrets, Redactor) else Redactor(secrets)
    return redact(line)


class JsonLinesPrinter:
    """Subscribes to a bus and writes its events to a text stream until stopped."""

    def __init__(self, bus: EventBus, stream: TextIO, secrets: Iterable[str] = ()) -> None:
        self._stream = stream
        self._redact = Redactor(secrets)
        self._queue: EventQueue
        self._queue, self._unsubscribe = bus.queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="jsonlines-printer")

    async def _run(self) -> None:
        while True:
            self._write(await self._queue.get_batch())

    def _write(self, events: list[Event]) -> None:
        if not events:
            return
        self._stream.write("".join(event_line(e, self._redact) + "\n" for e in events))
        with contextlib.suppress(BrokenPipeError):
            self._stream.flush()

    async def stop(self) -> None:
        """Print what is still waiting, then stop."""
        self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._write(self._queue.drain())
