"""The outbox pump: sends a device's stored reports, in order, and deletes them once confirmed.

A report is written to the store first (history + outbox); the pump sends the oldest pending
reports when the channel is connected and removes them from the outbox only when the connector
confirmed them (MQTT PUBACK, HTTP 204). Fresh reports go out as plain writes (the connector
stamps them on arrival, a few milliseconds after they were made). A backlog, reports older than
`backlog_age` s (kept while the connector was unreachable, or left by a previous run), goes out
as timestamped batches so the cloud's history shows each at the time it really happened. Each
batch is one request (`split_for_record` keeps a batch acceptable to `/onep:v1/stack/record`),
confirmed as a whole: a report is never sent again once the connector has confirmed it.

A report whose write was started but not confirmed (the connection broke before the PUBACK or
the 204, or a previous run was killed while it waited) is *in doubt*: the connector may have
stored it. It is never written again as a fresh value (the connector would stamp it anew and
hold it twice) but as a timestamped batch with its original time, which a time series stores
as the same point. Everything still pending when the pump starts is in doubt.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable

from otatui.engine.events import EventBus, ReportsDelivered, SessionError
from otatui.murano.channel import (
    AuthError,
    Channel,
    ChannelError,
    LinkState,
    NotConnected,
    TimedValue,
)
from otatui.murano.record import split_for_record
from otatui.store import OutboxItem, Store, StoreError

BACKLOG_AGE_S = 10.0
BATCH_LIMIT = 100
RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)


class OutboxPump:
    def __init__(
        self,
        *,
        name: str,
        store: Store,
        channel: Channel,
        bus: EventBus,
        clock: Callable[[], float] = time.time,
        backlog_age: float = BACKLOG_AGE_S,
        batch_limit: int = BATCH_LIMIT,
    ) -> None:
        self.name = name
        self.store = store
        self.channel = channel
        self.bus = bus
        self.clock = clock
        self.backlog_age = backlog_age
        self.batch_limit = batch_limit
        self._wake = asyncio.Event()
        self._state_changed = asyncio.Event()
        self.sent = 0
        self._in_doubt: set[int] = set()  # written, not confirmed (this run)
        self._doubt_upto = 0  # ids up to this one were pending when the pump started

    def wake(self) -> None:
        """Something was queued or the connection came back: look at the outbox again."""
        self._wake.set()
        self._state_changed.set()

    async def connected(self) -> None:
        """Wait until the channel is connected."""
        while self.channel.state.state is not LinkState.CONNECTED:
            self._state_changed.clear()
            await self._state_changed.wait()

    async def run(self) -> None:
        failures = 0
        try:
            self._doubt_upto = self.store.last_pending_id(self.name) or 0
        except StoreError as exc:
            self._error(str(exc))
        self._wake.set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while True:
                try:
                    items = self.store.pending(self.name, limit=self.batch_limit)
                except StoreError as exc:
                    self._error(str(exc))
                    break
                if not items:
                    break
                if self.channel.state.state is LinkState.AUTH_FAILED:
                    break  # final for this token: the reports stay in the outbox
                await self.connected()
                try:
                    await self._send(items)
                except NotConnected:
                    continue  # `connected()` waits for the reconnect
                except AuthError as exc:
                    self._error(f"report not sent: {exc}")
                    break
                except ChannelError as exc:
                    self._note(items[0], str(exc))
                    delay = RETRY_S[min(failures, len(RETRY_S) - 1)]
                    failures += 1
                    await asyncio.sleep(delay)
                    continue
                failures = 0

    def _timestamped(self, item: OutboxItem, now: float) -> bool:
        """Old, or in doubt: it goes out with its original time (see the module docstring)."""
        return (
            now - item.produced_at >= self.backlog_age
            or item.id <= self._doubt_upto
            or item.id in self._in_doubt
        )

    async def _send(self, items: list[OutboxItem]) -> None:
        now = self.clock()
        if not self._timestamped(items[0], now):
            item = items[0]
            self._in_doubt.add(item.id)  # any failure leaves it in doubt: it may have arrived
            await self.channel.write(item.resource, item.value)
            self._confirm([item], batch=False)
            return
        backlog = list(itertools.takewhile(lambda i: self._timestamped(i, now), items))
        records = [TimedValue(i.resource, i.value, i.produced_at) for i in backlog]
        group = split_for_record(records)[0]
        await self.channel.write_batch(group)
        self._confirm(backlog[: len(group)], batch=True)

    def _confirm(self, items: list[OutboxItem], *, batch: bool) -> None:
        ids = [i.id for i in items]
        try:
            self.store.confirm(ids, self.clock())
        except StoreError as exc:
            self._error(str(exc))
            return
        self.sent += len(ids)
        self._in_doubt.difference_update(ids)
        self.bus.publish(ReportsDelivered(device=self.name, outbox_ids=tuple(ids), batch=batch))

    def _note(self, item: OutboxItem, error: str) -> None:
        try:
            self.store.note_failure(item.id, error)
        except StoreError as exc:
            self._error(str(exc))

    def _error(self, message: str) -> None:
        self.bus.publish(SessionError(device=self.name, message=message))
