"""A session's reports and machine snapshot, written to the store together.

Every report goes to the store (history + outbox) in ONE transaction with the update machine's
snapshot, before anything is sent; the outbox pump sends it afterwards. Each report is stamped
with the time it was made (a relayed device report: the time `otatui.engine.relay.DeviceClock`
chose, the device's own when plausible, else when its link delivered it), never earlier than the
report before it, so a backlog reaches the cloud in order with non-decreasing original times.
A manifest taken up offline (`otatui.engine.forwarding`) has its acknowledgement queued here
too, before the reports it leads to.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from otatui.engine.events import EventBus, ReportQueued, SessionError
from otatui.otau.status import StatusReport
from otatui.store import PendingReport, Store, StoreError

OTAU_IN = "otau_in"
CONFIG_OTAU = "config_otau"
QUEUED_ACK_NOTE = "acknowledgement (queued: the connector is unreachable)"


class Recorder:
    def __init__(
        self,
        *,
        name: str,
        store: Store,
        bus: EventBus,
        clock: Callable[[], float],
        recorded: Callable[[], None],
    ) -> None:
        self.name = name
        self.store = store
        self.bus = bus
        self.clock = clock
        self.recorded = recorded  # something new waits in the outbox
        self.saved: dict[str, Any] | None = None  # the snapshot last written
        self.last_report: tuple[str, str, str] | None = None  # (version, status, message)
        self._last_stamp = 0.0

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
        """Write `reports` (labelled `source`) and `snapshot` in one transaction.

        `queued_ack`: the exact text of a manifest taken up offline, whose acknowledgement (a
        `config_otau` write over `protocol`) is queued before the reports.
        """
        stamp = self.stamp(at)
        pending = []
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
        pending += [
            PendingReport(
                resource=OTAU_IN,
                value=r.to_json(),
                source=source,
                version=r.version,
                status=r.status.value,
                produced_at=stamp,
            )
            for r in reports
        ]
        try:
            done = self.store.record_step(
                device=self.name,
                reports=pending,
                snapshot=json.dumps(snapshot, separators=(",", ":")),
                time=stamp,
                fetched_ack=queued_ack,
            )
        except StoreError as exc:
            self.bus.publish(SessionError(device=self.name, message=str(exc)))
            return
        self.saved = snapshot
        for report, enq in zip(reports, done[len(done) - len(reports) :], strict=True):
            self.last_report = (report.version, report.status.value, report.message)
            self.bus.publish(
                ReportQueued(
                    device=self.name,
                    time=stamp,
                    outbox_id=enq.outbox_id,
                    version=report.version,
                    status=report.status.value,
                    message=report.message,
                    source=source,
                )
            )
        if done:
            self.recorded()
