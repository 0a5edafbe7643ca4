"""The memory of a long poll loop and the stream its values are read from (used by `http`).

`PollMemory` keeps one poll's ``If-Modified-Since`` and what it already delivered, so that a value
re-sent before its acknowledgement landed is not yielded twice. `ValueStream` is the
cancellation-safe iterator behind `HttpChannel.values()`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

import httpx

from otatui.murano.backoff import Backoff
from otatui.murano.channel import AuthError, ResourceValue
from otatui.murano.device_api import parse_last_modified
from otatui.murano.form import FormError, decode_form

log = logging.getLogger(__name__)

END: Final = object()


class PollMemory:
    """One long poll loop's memory: its aliases, ``If-Modified-Since`` and what it delivered."""

    def __init__(self, aliases: tuple[str, ...], backoff: Backoff, since: str | None) -> None:
        self.aliases = aliases
        self.label = ", ".join(aliases)
        self.backoff = backoff
        self.since = since
        # alias -> ((raw, timestamp), loop time it was yielded)
        self.delivered: dict[str, tuple[tuple[str, float | None], float]] = {}

    def take(
        self,
        response: httpx.Response,
        acked: dict[str, tuple[str, float | None, float]],
        sent: float,
    ) -> list[ResourceValue]:
        """New values in a 200 answer (raises FormError on an unreadable body).

        `acked` maps an alias to the (raw, timestamp, loop time) of our last confirmed
        acknowledgement; `sent` is the loop time this poll was sent.
        """
        last_modified = response.headers.get("last-modified")
        stamp = parse_last_modified(last_modified)
        if stamp is not None and last_modified is not None:
            self.since = last_modified.strip()
        try:
            body = response.content.decode("utf-8")
        except UnicodeDecodeError:
            raise FormError("long poll answer is not UTF-8 text") from None
        fresh: list[ResourceValue] = []
        now = asyncio.get_running_loop().time()
        for alias, raw in decode_form(body, exact=True):
            key = (raw, stamp)
            previous = self.delivered.get(alias)
            if previous is not None and previous[0] == key:
                ack = acked.get(alias)
                # Yield it again only if we acknowledged that very delivery and this poll was
                # sent after the acknowledgement was confirmed.
                if ack is None or ack[:2] != key or not previous[1] < ack[2] < sent:
                    continue
                log.debug("%s delivered again after its acknowledgement: a new set", alias)
            self.delivered[alias] = (key, now)
            fresh.append(ResourceValue(alias=alias, raw=raw, timestamp=stamp, source="http"))
        return fresh


class ValueStream:
    """Iterator over a channel's queue: ends at `END`, raises a queued AuthError."""

    def __init__(self, queue: asyncio.Queue[object]) -> None:
        self._queue = queue

    def __aiter__(self) -> ValueStream:
        return self

    async def __anext__(self) -> ResourceValue:
        item = await self._queue.get()
        if item is END or isinstance(item, AuthError):
            self._queue.put_nowait(item)  # so that this and any other iteration ends again
            if isinstance(item, AuthError):
                raise item
            raise StopAsyncIteration
        assert isinstance(item, ResourceValue)
        return item
