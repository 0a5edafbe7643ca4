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
stored it. Everything still pending when the pump starts is in doubt. Before an `otau_in` report
in doubt is sent again, the pump reads the connector's current `otau_in` (`read_current`, an
HTTP read of the device API, also for MQTT devices). If the connector holds exactly this report
and this store never sent that value before (and did send others), only this report can have
put it there: it arrived, and it is recorded as delivered without a second copy. Otherwise (not
there, the read failed, or the value was sent before: a progress step repeated after a restart,
a boot report, which a read cannot tell apart) it is sent again, never as a fresh value (the
connector would stamp it anew) but as a timestamped batch with its original time. That is the
limit of the device API: a first copy sent as a plain write was stamped by the connector on
arrival, the re-send carries the time the report was made (a few ms earlier), so in that case
the cloud's time series can hold the report twice, at two nearby times.

A store that cannot record a confirmation (disk full, I/O error) does not make the pump send the
report again: the confirmed ids are held in memory and their recording is retried with bounded
exponential backoff (0.5 s doubling up to 30 s, `otatui.engine.store_retry`), with ONE
`SessionError` for the whole episode; nothing else is sent meanwhile, so at most one request's
reports are ever delivered without the store knowing. Once the store records them the pump goes
on as usual. If otatui stops before that, those reports are still pending in the store: the next
run finds them in doubt and sends them again with their original time (see above). A store that
cannot be read is retried the same way.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from otatui.engine.events import EventBus, ReportsDelivered, SessionError
from otatui.engine.store_retry import StoreRetry
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

OTAU_IN = "otau_in"
BACKLOG_AGE_S = 10.0
BATCH_LIMIT = 100
RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)
T = TypeVar("T")
ReadCurrent = Callable[[str], Awaitable[str | None]]  # a resource's value on the connector


@dataclass(frozen=True, slots=True)
class Delivery:
    """Reports the connector confirmed, to be recorded as delivered."""

    ids: tuple[int, ...]
    at: float  # when the connector confirmed them
    batch: bool


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
        read_current: ReadCurrent | None = None,
    ) -> None:
        self.name = name
        self.store = store
        self.channel = channel
        self.bus = bus
        self.clock = clock
        self.backlog_age = backlog_age
        self.batch_limit = batch_limit
        self.read_current = read_current
        self.found = 0  # reports in doubt found on the connector (not sent again)
        self._wake = asyncio.Event()
        self._state_changed = asyncio.Event()
        self.sent = 0
        self._in_doubt: set[int] = set()  # written, not confirmed (this run)
        self._doubt_upto = 0  # ids up to this one were pending when the pump started
        self._unrecorded: Delivery | None = None  # confirmed; the store has not recorded it yet
        self._unrecorded_delay = 0.0  # before the next attempt to record it
        self._confirm_retry = StoreRetry(name=name, bus=bus)
        self._read_retry = StoreRetry(name=name, bus=bus)
        self._note_retry = StoreRetry(name=name, bus=bus)

    @property
    def holding(self) -> int:
        """How many confirmed reports wait for the store to record their delivery."""
        return 0 if self._unrecorded is None else len(self._unrecorded.ids)

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
        last = await self._read(lambda: self.store.last_pending_id(self.name))
        self._doubt_upto = last or 0
        first = await self._read(lambda: self.store.pending(self.name, limit=1))
        if first:  # the one a previous run can have had in flight (alone or leading a batch)
            self._in_doubt.add(first[0].id)
        self._wake.set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while True:
                await self._settle()
                items = await self._read(
                    lambda: self.store.pending(self.name, limit=self.batch_limit)
                )
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

    async def _read(self, read: Callable[[], T]) -> T:
        """`read()` from the store, retried with backoff while the store fails."""
        while True:
            try:
                value = read()
            except StoreError as exc:
                message = f"{exc}; the outbox is read again in a moment, reports wait"
                await asyncio.sleep(self._read_retry.failed(message))
                continue
            self._read_retry.succeeded()
            return value

    def _timestamped(self, item: OutboxItem, now: float) -> bool:
        """Old, or in doubt: it goes out with its original time (see the module docstring)."""
        return (
            now - item.produced_at >= self.backlog_age
            or item.id <= self._doubt_upto
            or item.id in self._in_doubt
        )

    async def _send(self, items: list[OutboxItem]) -> None:
        if self._doubtful(items[0]) and await self._arrived(items[0]):
            self.found += 1
            self._confirm([items[0]], batch=False)
            return
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

    def _doubtful(self, item: OutboxItem) -> bool:
        """Written and maybe arrived (the later ones left by a previous run never went out
        before their first in doubt did: they are sent timestamped, see `_timestamped`)."""
        return item.id in self._in_doubt

    async def _arrived(self, item: OutboxItem) -> bool:
        """Whether the connector certainly holds `item`: its current value is this report, and
        this report is the first of its value this store ever sent, after others (so nothing
        else can have put that value there: not an earlier copy, not a point of a timestamped
        batch, which may be the connector's newest point whatever arrived after it)."""
        if self.read_current is None or item.resource != OTAU_IN:
            return False
        try:
            if self.store.first_sent(self.name, item.resource, item.value) != item.history_id:
                return False  # the same value was sent before: the connector's cannot tell
            if self.store.sent_before(self.name, item.resource, item.history_id) is None:
                return False  # the first report of this store: the value may be older
        except StoreError:
            return False
        try:
            current = await self.read_current(item.resource)
        except ChannelError:
            return False
        return current == item.value

    def _confirm(self, items: list[OutboxItem], *, batch: bool) -> None:
        self._unrecorded = Delivery(tuple(i.id for i in items), self.clock(), batch)
        self._record_delivery()

    async def _settle(self) -> None:
        """Wait until the store has recorded the delivery the connector confirmed (if any)."""
        while self._unrecorded is not None:
            await asyncio.sleep(self._unrecorded_delay)
            self._record_delivery()

    def _record_delivery(self) -> None:
        delivery = self._unrecorded
        assert delivery is not None
        try:
            self.store.confirm(delivery.ids, delivery.at)
        except StoreError as exc:
            count = len(delivery.ids)
            what = "1 report" if count == 1 else f"{count} reports"
            self._unrecorded_delay = self._confirm_retry.failed(
                f"{exc}; {what} reached the connector and will not be sent again: recording "
                "that is retried, nothing more is sent until it works"
            )
            return
        self._confirm_retry.succeeded()
        self._unrecorded, self._unrecorded_delay = None, 0.0
        self.sent += len(delivery.ids)
        self._in_doubt.difference_update(delivery.ids)
        self.bus.publish(
            ReportsDelivered(device=self.name, outbox_ids=delivery.ids, batch=delivery.batch)
        )

    def _note(self, item: OutboxItem, error: str) -> None:
        try:
            self.store.note_failure(item.id, error)
        except StoreError as exc:
            self._note_retry.failed(str(exc))  # one error per episode; the send is retried
            return
        self._note_retry.succeeded()

    def _error(self, message: str) -> None:
        self.bus.publish(SessionError(device=self.name, message=message))
