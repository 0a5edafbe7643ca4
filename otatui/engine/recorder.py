"""A session's reports and machine snapshot, written to the store together.

Every report goes to the store (history + outbox) in ONE transaction with the update machine's
snapshot, before anything is sent; the outbox pump sends it afterwards. Each report is stamped
with the time it was made (a relayed device report: the time `otatui.engine.relay.DeviceClock`
chose, the device's own when plausible, else when its link delivered it), never earlier than the
report before it, so a backlog reaches the cloud in order with non-decreasing original times.
A manifest taken up offline (`otatui.engine.forwarding`) has its acknowledgement queued here
too, before the reports it leads to.

A step the store cannot record (disk full, I/O error) is not lost: it is held in memory, in
order, and written later by a background retry with bounded exponential backoff (0.5 s doubling
up to 30 s, `otatui.engine.store_retry`); every later step waits behind it, so the outbox gets
the reports in the order they were made, each with its original time. The technician sees ONE
`SessionError` for the episode. The update itself goes on (its reports reach the connector once
they are stored), and the machine's snapshot is written with them, so a crash still finds the
store consistent: the last state written matches the outbox.

Bounds: at most `MAX_HELD` reports are held per device. Past that, the oldest held progress
reports (`..._STEP`, rate-limited anyway) are dropped first, then, if only other reports are
left, the oldest held reports whatever their status; one more `SessionError` says so. A step
with no reports (only a new snapshot) does not add to what is held: the held snapshot is
replaced. Reports still held when the session stops are written one last time; if the store
still fails they are lost and an error says how many.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from otatui.engine.events import EventBus, ReportQueued, SessionError
from otatui.engine.store_retry import StoreRetry
from otatui.otau.status import StatusReport
from otatui.store import Enqueued, PendingReport, Store, StoreError

OTAU_IN = "otau_in"
CONFIG_OTAU = "config_otau"
QUEUED_ACK_NOTE = "acknowledgement (queued: the connector is unreachable)"
MAX_HELD = 1000  # reports held in memory per device while the store cannot record them


@dataclass(slots=True)
class Step:
    """One step to write: its reports (with the pending rows) and the snapshot after it."""

    pending: list[PendingReport]
    reports: list[StatusReport | None]  # one per pending row (None: the queued acknowledgement)
    snapshot: str
    stamp: float
    source: str
    queued_ack: str | None


class Recorder:
    def __init__(
        self,
        *,
        name: str,
        store: Store,
        bus: EventBus,
        clock: Callable[[], float],
        recorded: Callable[[], None],
        max_held: int = MAX_HELD,
    ) -> None:
        self.name = name
        self.store = store
        self.bus = bus
        self.clock = clock
        self.recorded = recorded  # something new waits in the outbox
        self.max_held = max_held
        self.saved: dict[str, Any] | None = None  # the snapshot last handed to the store
        self.last_report: tuple[str, str, str] | None = None  # (version, status, message)
        self.dropped = 0  # held reports dropped past `max_held` (this run)
        self._last_stamp = 0.0
        self._held: deque[Step] = deque()
        self._retry = StoreRetry(name=name, bus=bus)
        self._task: asyncio.Task[None] | None = None
        self._dropping = False  # the "past the bound" error was published (this episode)

    @property
    def held(self) -> int:
        """How many reports wait in memory for the store."""
        return sum(len(s.pending) for s in self._held)

    def stamp(self, at: float | None = None) -> float:
        """The time to store: `at` (default now), never before the previous report's."""
        stamp = max(self.clock() if at is None else at, self._last_stamp)
        self._last_stamp = stamp
        return stamp

    def record(
        self,
        reports: list[StatusReport],
        snapshot: dict[str, Any],
        *,
        source: str,
        protocol: str,
        at: float | None = None,
        queued_ack: str | None = None,
    ) -> None:
        """Write `reports` (labelled `source`) and `snapshot` in one transaction (or hold them
        until the store can: see the module docstring).

        `queued_ack`: the exact text of a manifest taken up offline, whose acknowledgement (a
        `config_otau` write over `protocol`) is queued before the reports.
        """
        stamp = self.stamp(at)
        pending: list[PendingReport] = []
        made: list[StatusReport | None] = []
        if queued_ack is not None:
            pending.append(
                PendingReport(
                    resource=CONFIG_OTAU,
                    value=queued_ack,
                    source=protocol,
                    note=QUEUED_ACK_NOTE,
                    produced_at=stamp,
                )
            )
            made.append(None)
        for r in reports:
            pending.append(
                PendingReport(
                    resource=OTAU_IN,
                    value=r.to_json(),
                    source=source,
                    version=r.version,
                    status=r.status.value,
                    produced_at=stamp,
                )
            )
            made.append(r)
        step = Step(
            pending=pending,
            reports=made,
            snapshot=json.dumps(snapshot, separators=(",", ":")),
            stamp=stamp,
            source=source,
            queued_ack=queued_ack,
        )
        self.saved = snapshot
        if reports:
            last = reports[-1]
            self.last_report = (last.version, last.status.value, last.message)
        if self._held:
            self._hold(step)  # behind what waits already: the order is kept
            if self._task is None or self._task.done():  # (it cannot end while steps are held)
                self._retry_in(0.0)
            return
        try:
            done = self._write(step)
        except StoreError as exc:
            self._hold(step)
            self._retry_in(self._retry.failed(self._failure(exc)))
            return
        self._announce(step, done)

    def _retry_in(self, delay: float) -> None:
        self._task = asyncio.create_task(self._retry_held(delay), name=f"{self.name}: store")

    def _write(self, step: Step) -> list[Enqueued]:
        return self.store.record_step(
            device=self.name,
            reports=step.pending,
            snapshot=step.snapshot,
            time=step.stamp,
            fetched_ack=step.queued_ack,
        )

    def _announce(self, step: Step, done: list[Enqueued]) -> None:
        for report, enq in zip(step.reports, done, strict=True):
            if report is None:
                continue
            self.bus.publish(
                ReportQueued(
                    device=self.name,
                    time=step.stamp,
                    outbox_id=enq.outbox_id,
                    version=report.version,
                    status=report.status.value,
                    message=report.message,
                    source=step.source,
                )
            )
        if done:
            self.recorded()

    def _failure(self, exc: StoreError) -> str:
        return (
            f"{exc}; the update's reports and state are held in memory (in order) and written "
            "as soon as the store works again, retried every 30 s at most"
        )

    # -- holding -----------------------------------------------------------------------------

    def _hold(self, step: Step) -> None:
        if not step.pending and self._held:
            self._held[-1].snapshot = step.snapshot  # only the latest state matters
            return
        self._held.append(step)
        excess = self.held - self.max_held
        if excess > 0:
            self._drop(excess)

    def _drop(self, count: int) -> None:
        """Drop `count` held reports: progress reports first, oldest first (never a queued
        acknowledgement: it marks the fetched manifest used)."""
        for only_progress in (True, False):
            for step in self._held:
                keep_pending, keep_reports = [], []
                for row, report in zip(step.pending, step.reports, strict=True):
                    droppable = report is not None and (report.status.is_step or not only_progress)
                    if count > 0 and droppable:
                        count -= 1
                        self.dropped += 1
                        continue
                    keep_pending.append(row)
                    keep_reports.append(report)
                step.pending, step.reports = keep_pending, keep_reports
        # A step left without reports keeps only its snapshot, which the next one supersedes.
        last = self._held[-1]
        self._held = deque(s for s in self._held if s.pending or s is last)
        if not self._dropping:
            self._dropping = True
            self.bus.publish(
                SessionError(
                    device=self.name,
                    message=f"the store still fails: more than {self.max_held} reports held "
                    "in memory; the oldest progress reports are dropped from now on",
                )
            )

    async def _retry_held(self, delay: float) -> None:
        while self._held:
            await asyncio.sleep(delay)
            step = self._held[0]
            try:
                done = self._write(step)
            except StoreError as exc:
                delay = self._retry.failed(self._failure(exc))
                continue
            self._held.popleft()
            self._announce(step, done)
            delay = 0.0  # the rest of what is held follows at once
        self._retry.succeeded()
        self._dropping = False
        self._task = None

    async def aclose(self) -> None:
        """Stop retrying; write what is still held one last time (an error says what is lost)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while self._held:
            step = self._held[0]
            try:
                self._write(step)
            except StoreError as exc:
                lost = self.held
                self._held.clear()
                what = "1 report" if lost == 1 else f"{lost} reports"
                self.bus.publish(
                    SessionError(
                        device=self.name,
                        message=f"{exc}; lost: {what} made while the store failed (otatui "
                        "stopped before it could record them)",
                    )
                )
                return
            self._held.popleft()
