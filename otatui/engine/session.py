"""One device's session: channel + update state machine + downloads + link + store.

The session is an actor: everything that changes the state machine goes through one queue of
`otatui.otau.events` and one task (`_drive`) that feeds them to the machine and carries out the
actions it returns, in order. Work (checks, downloads, installs) runs in tasks that only post
events back, tagged with the job number the machine gave them, so late results of aborted work
are ignored by the machine. Every report is written to the store (history + outbox, together
with the machine's snapshot, in one transaction) before anything is sent; the outbox pump
(`otatui.engine.outbox`) sends it and removes it only once the connector confirmed it.

The jobs themselves (checks, downloads, the install through the link) are in
`otatui.engine.jobs`; how a bridged device's own reports are relayed in `otatui.engine.relay`;
the apply gate in `otatui.engine.gate`; store-and-forward (working from the manifest `otatui
fetch` kept while the connector is unreachable) in `otatui.engine.forwarding`.

Reports and snapshots are written by `otatui.engine.recorder` (with their original times), the
live acknowledgement by `otatui.engine.acknowledgement`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from otatui.engine.acknowledgement import Acknowledgement
from otatui.engine.events import (
    ConnectionChanged,
    EventBus,
    PhaseChanged,
    SessionError,
    manifest_event,
)
from otatui.engine.forwarding import Forwarding
from otatui.engine.gate import ApplyGate, ApplyMode
from otatui.engine.jobs import Jobs
from otatui.engine.outbox import BACKLOG_AGE_S, OutboxPump, ReadCurrent
from otatui.engine.recorder import Recorder
from otatui.engine.relay import DeviceStep, FromLink, QueueItem
from otatui.engine.store_retry import StoreRetry
from otatui.links.link import Link
from otatui.murano.channel import (
    Channel,
    ChannelState,
    ResourceValue,
)
from otatui.otau import actions as act
from otatui.otau import events as ev
from otatui.otau.machine import UpdateMachine
from otatui.otau.manifest import Manifest, ManifestError, parse_manifest
from otatui.otau.progress import ProgressPolicy
from otatui.otau.snapshot import Phase
from otatui.otau.status import StatusReport
from otatui.store import FetchedManifest, Store, StoreError
from otatui.transfer import ContentAuth, Downloader

CONFIG_OTAU = "config_otau"
TICK_S = 1.0
ABORTED_JOB_GRACE_S = 10.0  # how long a stopping session waits for an aborted job to end
CACHE_SOURCE = "cache"  # history source of a manifest taken from `otatui fetch`'s store


@dataclass(frozen=True, slots=True)
class SessionOptions:
    name: str
    identity: str
    role: str  # "agent" | "bridge"
    installed_version: str
    work_dir: Path  # where install folders are made (one per job, removed afterwards)
    policy: ProgressPolicy = field(default_factory=ProgressPolicy)
    backlog_age: float = BACKLOG_AGE_S  # reports older than this go out as timestamped batches
    apply: ApplyMode = "auto"  # "confirm": wait for `Session.apply()` before the install/push
    offline_after: float | None = None  # bridge: s unreachable before the fetched manifest is used


class Session:
    """Runs the update flow of one device until stopped."""

    def __init__(
        self,
        options: SessionOptions,
        *,
        channel: Channel,
        store: Store,
        bus: EventBus,
        downloader: Downloader,
        content_auth: ContentAuth | None,
        link: Link,
        install_slots: asyncio.Semaphore | None = None,
        clock: Callable[[], float] = time.time,
        read_current: ReadCurrent | None = None,
    ) -> None:
        """`read_current`: reads a resource's value on the connector, so that the outbox need
        not send again a report in doubt that arrived (see `otatui.engine.outbox`)."""
        self.options = options
        self.name = options.name
        self.channel = channel
        self.store = store
        self.bus = bus
        self.link = link
        self._clock = clock
        self._queue: asyncio.Queue[QueueItem] = asyncio.Queue()
        self._work: dict[int, asyncio.Task[None]] = {}
        self._aborted: set[asyncio.Task[None]] = set()  # cancelled jobs not yet ended
        self._tasks: list[asyncio.Task[None]] = []
        self._received: dict[str, str] = {}  # parsed raw -> the exact text received (for acks)
        self._offline_raw: str | None = None  # the fetched manifest being taken up offline
        self.machine = self._restore_machine()
        self.outbox = OutboxPump(
            name=self.name,
            store=store,
            channel=channel,
            bus=bus,
            clock=clock,
            backlog_age=options.backlog_age,
            read_current=read_current,
        )
        self.recorder = Recorder(
            name=self.name, store=store, bus=bus, clock=clock, recorded=self.outbox.wake
        )
        self.acknowledgement = Acknowledgement(
            name=self.name,
            channel=channel,
            store=store,
            bus=bus,
            clock=clock,
            connected=self.outbox.connected,
        )
        self.forwarding = Forwarding(
            name=self.name,
            store=store,
            clock=clock,
            offline_after=options.offline_after,
            notice=lambda message: bus.publish(SessionError(device=self.name, message=message)),
        )
        self.gate = ApplyGate(options.apply, device=self.name, bus=bus)
        self.jobs = Jobs(
            name=self.name,
            bus=bus,
            downloader=downloader,
            content_auth=content_auth,
            link=link,
            work_dir=options.work_dir,
            install_slots=install_slots or asyncio.Semaphore(1),
            gate=self.gate,
            post=self.post,
            clock=clock,
            pins=self.forwarding.pins,
        )
        self.offered: Manifest | None = None

    # -- life cycle --------------------------------------------------------------------------

    def _restore_machine(self) -> UpdateMachine:
        saved = self.store.get_session(self.name)
        if saved is not None:
            try:
                return UpdateMachine.restore(json.loads(saved.snapshot), self.options.policy)
            except (ValueError, TypeError, KeyError) as exc:
                self.bus.publish(
                    SessionError(
                        device=self.name,
                        message=f"saved state unreadable ({exc}); starting from the config",
                    )
                )
        return UpdateMachine(self.options.installed_version, self.options.policy)

    async def run(self) -> None:
        """Connect, report the installed version, then follow manifests until cancelled."""
        self.options.work_dir.mkdir(parents=True, exist_ok=True)
        await self.channel.start()
        self._tasks = [
            asyncio.create_task(self._drive(), name=f"{self.name}: drive"),
            asyncio.create_task(self._receive(), name=f"{self.name}: receive"),
            asyncio.create_task(self.outbox.run(), name=f"{self.name}: outbox"),
            asyncio.create_task(self._tick(), name=f"{self.name}: tick"),
        ]
        self.post(ev.Boot(now=self._clock()))
        try:
            await asyncio.gather(*self._tasks)
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        pending = [*self._tasks, *self._work.values()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._aborted:  # cancelled already: let their clean-up finish (bounded), not cut it
            await asyncio.wait(tuple(self._aborted), timeout=ABORTED_JOB_GRACE_S)
        await self.recorder.aclose()
        await self.acknowledgement.aclose()
        with contextlib.suppress(Exception):
            await self.channel.close()

    def post(self, item: QueueItem) -> None:
        self._queue.put_nowait(item)

    # -- commands ------------------------------------------------------------------------------

    def cancel(self, reason: str = "cancelled by the technician") -> None:
        self.post(ev.Cancel(now=self._clock(), reason=reason))

    def retry(self) -> None:
        self.post(ev.Retry(now=self._clock()))

    def apply(self) -> bool:
        """Let an update that waits for confirmation (`apply = "confirm"`) go on to its install
        or push. False when none is waiting."""
        return self.gate.release()

    @property
    def awaiting_apply(self) -> str | None:
        """The version waiting for `apply()`, or None."""
        return self.gate.waiting

    @property
    def last_report(self) -> tuple[str, str, str] | None:
        """(version, status, message) of the latest report made."""
        return self.recorder.last_report

    # -- the actor -----------------------------------------------------------------------------

    async def _drive(self) -> None:
        while True:
            item = await self._queue.get()
            own_final: StatusReport | None = None
            at: float | None = None
            source = self.channel.protocol  # what otatui did itself
            match item:
                case DeviceStep():
                    self._relay_step(item)
                    continue
                case FromLink(event=event, own_final=own_final, at=at):
                    if self.options.role == "bridge":
                        source = self.link.source  # what the bridged device's link caused
                case _:
                    event = item
            before = self.machine.phase
            actions = self.machine.handle(event)
            if actions:
                self._carry_out(actions, source, own_final, at)
            elif self.machine.snapshot() != self.recorder.saved:  # a file finished: no report
                self._record([], source)
            if self.machine.phase is not before:
                current = self.machine.current
                self.bus.publish(
                    PhaseChanged(
                        device=self.name,
                        phase=self.machine.phase.value,
                        version=current.version if current else None,
                        installed_version=self.machine.installed_version,
                    )
                )

    def _carry_out(
        self,
        actions: list[act.Action],
        source: str,
        own_final: StatusReport | None,
        at: float | None = None,
    ) -> None:
        """`at`: the time of the reports when a bridged device said when it made them."""
        reports = []
        for action in actions:
            if isinstance(action, act.Report):
                report = action.report
                if (
                    own_final is not None
                    and report.status.is_final
                    and report.status.is_error
                    and report.version == own_final.version
                ):
                    report = own_final  # the bridged device's own final status and message
                reports.append(report)
        queued_ack = None
        offline = self._offline_raw
        if offline is not None and any(
            isinstance(a, act.Acknowledge) and self._received.get(a.raw, a.raw) == offline
            for a in actions
        ):
            queued_ack, self._offline_raw = offline, None
        self._record(reports, source, at=at, queued_ack=queued_ack)
        for action in actions:
            match action:
                case act.Acknowledge(raw=raw):
                    if self._received.get(raw, raw) != queued_ack:
                        self._acknowledge(raw)
                case act.Report():
                    pass  # recorded above, sent by the outbox pump
                case act.RunChecks(manifest=manifest, job=job):
                    self._start(job, self.jobs.checks(manifest, job))
                case act.StartDownload(manifest=manifest, job=job):
                    self._start(job, self.jobs.download(manifest, job))
                case act.StartInstall(manifest=manifest, job=job):
                    self._start(job, self.jobs.install(manifest, job))
                case act.Abort(job=job):
                    task = self._work.pop(job, None)
                    if task is not None:
                        task.cancel()
                        self._aborted.add(task)  # awaited at shutdown if still running
                        task.add_done_callback(self._aborted.discard)
                case act.Rejected(reason=reason, raw=raw):
                    self._store_safely(
                        lambda: self.store.add_history(
                            device=self.name,
                            direction="in",
                            resource=CONFIG_OTAU,
                            value=raw,
                            source=self.channel.protocol,
                            note=f"rejected: {reason}",
                        )
                    )

    def _relay_step(self, step: DeviceStep) -> None:
        """A bridged device's non-final report, relayed one for one while its push runs."""
        current = self.machine.current
        if (
            self.machine.phase is Phase.INSTALLING
            and step.job == self.machine.job
            and current is not None
            and current.version == step.report.version
        ):
            self._record([step.report], self.link.source, at=step.now)

    def _record(
        self,
        reports: list[StatusReport],
        source: str,
        *,
        at: float | None = None,
        queued_ack: str | None = None,
    ) -> None:
        """`source` labels the reports in the history: the channel's protocol for what otatui
        did itself (an agent's install hook included: it runs on this machine), the link's name
        ("serial", "lan") for what a bridged device reported or its link caused."""
        self.recorder.record(
            reports,
            self.machine.snapshot(),
            source=source,
            protocol=self.channel.protocol,
            at=at,
            queued_ack=queued_ack,
        )

    def _store_safely(self, write: Callable[[], object]) -> None:
        try:
            write()
        except StoreError as exc:
            self.bus.publish(SessionError(device=self.name, message=str(exc)))

    def _start(self, job: int, work: Awaitable[None]) -> None:
        async def runner() -> None:
            try:
                await work
            finally:
                if self._work.get(job) is task:
                    del self._work[job]

        task = asyncio.create_task(runner(), name=f"{self.name}: job {job}")
        self._work[job] = task

    # -- receiving -----------------------------------------------------------------------------

    async def _receive(self) -> None:
        async for value in self.channel.values():
            if value.alias != CONFIG_OTAU:
                continue
            try:
                duplicate = self.forwarding.duplicate(value.raw)
            except StoreError as exc:
                self.bus.publish(SessionError(device=self.name, message=str(exc)))
                duplicate = False
            if duplicate:
                note = "already worked offline from the fetched manifest: acknowledged only"
                self._history_in(value, parse_manifest(value.raw), note=note)
                self._acknowledge(value.raw)
                continue
            self._on_manifest(value)

    def _on_manifest(self, value: ResourceValue, note: str | None = None) -> None:
        parsed = parse_manifest(value.raw)
        now = self._clock()
        # An invalid value's `raw` is a printable copy; the acknowledgement must echo what came.
        self._received = {parsed.raw: value.raw}
        self._history_in(value, parsed, note=note)
        self.bus.publish(manifest_event(self.name, parsed, value.source))
        if isinstance(parsed, Manifest):
            self.offered = parsed
        self.post(ev.ManifestReceived(parsed=parsed, now=now))

    def _history_in(
        self, value: ResourceValue, parsed: Manifest | ManifestError, note: str | None
    ) -> None:
        if isinstance(parsed, ManifestError):
            note = parsed.reason if note is None else f"{note}; {parsed.reason}"
        self._store_safely(
            lambda: self.store.add_history(
                device=self.name,
                direction="in",
                resource=CONFIG_OTAU,
                value=value.raw,
                source=value.source or self.channel.protocol,
                time=value.timestamp or self._clock(),
                version=parsed.version,
                note=note,
            )
        )

    def _work_offline(self, fetched: FetchedManifest) -> None:
        """Take up the manifest `otatui fetch` kept, as if the cloud had just delivered it."""
        self._offline_raw = fetched.raw
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(fetched.fetched_at))
        self._on_manifest(
            ResourceValue(alias=CONFIG_OTAU, raw=fetched.raw, source=CACHE_SOURCE),
            note=f"fetched {when}; the connector is unreachable: working from the cache",
        )

    def _acknowledge(self, raw: str) -> None:
        self.acknowledgement.send(self._received.get(raw, raw))

    async def _tick(self) -> None:
        unreadable = StoreRetry(name=self.name, bus=self.bus)  # one error while reads fail
        while True:
            await asyncio.sleep(TICK_S)
            if self.machine.phase is not Phase.IDLE:
                self.post(ev.Tick(now=self._clock()))
            elif self._offline_raw is None:
                try:
                    fetched = self.forwarding.candidate(self.machine)
                except StoreError as exc:
                    unreadable.failed(f"{exc}; the fetched manifest is looked at again each second")
                    continue
                unreadable.succeeded()
                if fetched is not None:
                    self._work_offline(fetched)

    # -- channel state -------------------------------------------------------------------------

    def on_channel_state(self, state: ChannelState) -> None:
        """Give this to the channel as its `on_state` callback."""
        self.bus.publish(ConnectionChanged.of(self.name, self.channel.protocol, state))
        self.forwarding.on_state(state)
        self.outbox.wake()
