"""One device's session: channel + update state machine + downloads + link + store.

The session is an actor: everything that changes the state machine goes through one queue of
`otatui.otau.events` and one task (`_drive`) that feeds them to the machine and carries out the
actions it returns, in order. Work (checks, downloads, installs) runs in tasks that only post
events back, tagged with the job number the machine gave them, so late results of aborted work
are ignored by the machine. Every report is written to the store (history + outbox, together
with the machine's snapshot, in one transaction) before anything is sent; the outbox pump
(`otatui.engine.outbox`) sends it and removes it only once the connector confirmed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from otatui.engine.events import (
    ConnectionChanged,
    EventBus,
    InstallOutput,
    PhaseChanged,
    ReportQueued,
    SessionError,
    TransferFinished,
    TransferProgress,
    manifest_event,
)
from otatui.engine.outbox import BACKLOG_AGE_S, OutboxPump
from otatui.links.link import DeviceReport, Finished, InstallRequest, Link, Step
from otatui.murano.channel import (
    AuthError,
    Channel,
    ChannelError,
    ChannelState,
    ResourceValue,
)
from otatui.otau import actions as act
from otatui.otau import events as ev
from otatui.otau.machine import UpdateMachine
from otatui.otau.manifest import Manifest, ManifestError, parse_manifest
from otatui.otau.progress import ProgressPolicy
from otatui.otau.snapshot import Phase
from otatui.otau.status import Status, StatusReport
from otatui.store import PendingReport, Store, StoreError
from otatui.transfer import CachedFile, ContentAuth, Downloader, DownloadError, materialize

OTAU_IN = "otau_in"
CONFIG_OTAU = "config_otau"
MIN_FREE_BYTES = 16 * 1024 * 1024
TICK_S = 1.0


@dataclass(frozen=True, slots=True)
class SessionOptions:
    name: str
    identity: str
    role: str  # "agent" | "bridge"
    installed_version: str
    work_dir: Path  # where install folders are made (one per job, removed afterwards)
    policy: ProgressPolicy = field(default_factory=ProgressPolicy)
    backlog_age: float = BACKLOG_AGE_S  # reports older than this go out as timestamped batches


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
    ) -> None:
        self.options = options
        self.name = options.name
        self.channel = channel
        self.store = store
        self.bus = bus
        self.downloader = downloader
        self.content_auth = content_auth
        self.link = link
        self._install_slots = install_slots or asyncio.Semaphore(1)
        self._clock = clock
        self._queue: asyncio.Queue[ev.Event] = asyncio.Queue()
        self._work: dict[int, asyncio.Task[None]] = {}
        self._files: dict[int, CachedFile] = {}  # index -> verified file of the current job
        self._files_job = -1
        self._tasks: list[asyncio.Task[None]] = []
        self._ack_task: asyncio.Task[None] | None = None
        self._from_link: set[int] = set()  # ids of queued events that a bridged device caused
        self._received: dict[str, str] = {}  # parsed raw -> the exact text received (for acks)
        self.machine = self._restore_machine()
        self._saved: dict[str, object] | None = None
        self.outbox = OutboxPump(
            name=self.name,
            store=store,
            channel=channel,
            bus=bus,
            clock=clock,
            backlog_age=options.backlog_age,
        )
        self.last_report: tuple[str, str, str] | None = None  # (version, status, message)
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
        pending = [t for t in (*self._tasks, *self._work.values(), self._ack_task) if t]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.channel.close()

    def post(self, event: ev.Event) -> None:
        self._queue.put_nowait(event)

    # -- commands ------------------------------------------------------------------------------

    def cancel(self, reason: str = "cancelled by the technician") -> None:
        self.post(ev.Cancel(now=self._clock(), reason=reason))

    def retry(self) -> None:
        self.post(ev.Retry(now=self._clock()))

    # -- the actor -----------------------------------------------------------------------------

    async def _drive(self) -> None:
        while True:
            event = await self._queue.get()
            before = self.machine.phase
            actions = self.machine.handle(event)
            via_link = id(event) in self._from_link
            self._from_link.discard(id(event))
            if actions:
                await self._carry_out(actions, self.link.source if via_link else None)
            elif self.machine.snapshot() != self._saved:  # e.g. a file finished: no report
                self._record([], self.channel.protocol)
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

    async def _carry_out(self, actions: list[act.Action], source: str | None) -> None:
        reports = [a.report for a in actions if isinstance(a, act.Report)]
        self._record(reports, source or self.channel.protocol)
        for action in actions:
            match action:
                case act.Acknowledge(raw=raw):
                    self._acknowledge(raw)
                case act.Report():
                    pass  # recorded above, sent by the outbox pump
                case act.RunChecks(manifest=manifest, job=job):
                    self._start(job, self._checks(manifest, job))
                case act.StartDownload(manifest=manifest, job=job, files_done=done):
                    self._start(job, self._download(manifest, job, done))
                case act.StartInstall(manifest=manifest, job=job):
                    self._start(job, self._install(manifest, job))
                case act.Abort(job=job):
                    task = self._work.pop(job, None)
                    if task is not None:
                        task.cancel()
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

    def _record(self, reports: list[StatusReport], source: str) -> None:
        """Reports and the machine's snapshot go to the store together (one transaction).

        `source` labels them in the history: the channel's protocol for what otatui did itself,
        the link's name ("serial", "lan") for what a bridged device reported through its link.
        """
        pending = [
            PendingReport(
                resource=OTAU_IN,
                value=r.to_json(),
                source=source,
                version=r.version,
                status=r.status.value,
            )
            for r in reports
        ]
        state = self.machine.snapshot()
        snapshot = json.dumps(state, separators=(",", ":"))
        try:
            done = self.store.record_step(device=self.name, reports=pending, snapshot=snapshot)
        except StoreError as exc:
            self.bus.publish(SessionError(device=self.name, message=str(exc)))
            return
        self._saved = state
        for report, enq in zip(reports, done, strict=True):
            self.last_report = (report.version, report.status.value, report.message)
            self.bus.publish(
                ReportQueued(
                    device=self.name,
                    outbox_id=enq.outbox_id,
                    version=report.version,
                    status=report.status.value,
                    message=report.message,
                    source=source,
                )
            )
        if done:
            self.outbox.wake()

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
            self._on_manifest(value)

    def _on_manifest(self, value: ResourceValue) -> None:
        parsed = parse_manifest(value.raw)
        now = self._clock()
        # An invalid value's `raw` is a printable copy; the acknowledgement must echo what came.
        self._received = {parsed.raw: value.raw}
        self._store_safely(
            lambda: self.store.add_history(
                device=self.name,
                direction="in",
                resource=CONFIG_OTAU,
                value=value.raw,
                source=value.source or self.channel.protocol,
                time=value.timestamp or now,
                version=parsed.version,
                note=parsed.reason if isinstance(parsed, ManifestError) else None,
            )
        )
        self.bus.publish(manifest_event(self.name, parsed, value.source))
        if isinstance(parsed, Manifest):
            self.offered = parsed
        self.post(ev.ManifestReceived(parsed=parsed, now=now))

    def _acknowledge(self, raw: str) -> None:
        """Echo the identical value back, retrying across reconnects; a newer ack replaces it."""
        if self._ack_task is not None:
            self._ack_task.cancel()
        raw = self._received.get(raw, raw)
        value = ResourceValue(alias=CONFIG_OTAU, raw=raw, source=self.channel.protocol)

        async def ack() -> None:
            delay = 0.5
            while True:
                try:
                    await self.channel.acknowledge(value)
                except AuthError:
                    return
                except ChannelError:
                    await self.outbox.connected()
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
                    continue
                self._store_safely(
                    lambda: self.store.add_history(
                        device=self.name,
                        direction="out",
                        resource=CONFIG_OTAU,
                        value=raw,
                        source=self.channel.protocol,
                        note="acknowledgement",
                        delivered_at=self._clock(),
                    )
                )
                return

        self._ack_task = asyncio.create_task(ack(), name=f"{self.name}: ack")

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            if self.machine.phase is not Phase.IDLE:
                self.post(ev.Tick(now=self._clock()))

    # -- work ----------------------------------------------------------------------------------

    async def _checks(self, manifest: Manifest, job: int) -> None:
        cache = self.downloader.cache_dir
        try:
            cache.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(cache).free
        except OSError as exc:
            self.post(
                ev.TestResult(
                    ok=False, message=f"cache folder unusable: {exc}", now=self._clock(), job=job
                )
            )
            return
        if manifest.needs_download:
            self.post(
                ev.TestStep(
                    message=f"{free // 2**20} MiB free for downloads", now=self._clock(), job=job
                )
            )
            if free < MIN_FREE_BYTES:
                self.post(
                    ev.TestResult(
                        ok=False,
                        message=f"only {free // 2**20} MiB free in the download cache",
                        now=self._clock(),
                        job=job,
                    )
                )
                return
        self.post(ev.TestResult(ok=True, message="ready", now=self._clock(), job=job))

    async def _download(self, manifest: Manifest, job: int, files_done: tuple[int, ...]) -> None:
        if self._files_job != job:
            self._files, self._files_job = {}, job
        items = manifest.items
        for index, item in enumerate(items):
            if index in self._files:
                continue
            fetched = False  # any bytes moved (else the file came from the cache)
            try:
                async with contextlib.aclosing(
                    self.downloader.download(item, self._auth_for(item.source.value))
                ) as progress:
                    async for p in progress:
                        now = self._clock()
                        self.bus.publish(
                            TransferProgress(
                                device=self.name,
                                time=now,
                                file=item.filename,
                                index=index,
                                count=len(items),
                                done=p.done,
                                total=p.total,
                                rate=p.rate_bytes_per_s,
                            )
                        )
                        if p.result is not None:
                            self._files[index] = p.result
                            self.bus.publish(
                                TransferFinished(
                                    device=self.name,
                                    file=item.filename,
                                    ok=True,
                                    size=p.result.size,
                                    sha256=p.result.sha256,
                                    from_cache=not fetched,
                                )
                            )
                        else:
                            fetched = True
                            self.post(
                                ev.DownloadProgress(
                                    index=index, done=p.done, total=p.total, now=now, job=job
                                )
                            )
            except DownloadError as exc:
                message = str(exc)
                self.bus.publish(
                    TransferFinished(
                        device=self.name, file=item.filename, ok=False, message=message
                    )
                )
                self.post(ev.DownloadFailed(message=message, now=self._clock(), job=job))
                return
            if index not in self._files:
                self.post(
                    ev.DownloadFailed(
                        message=f"{item.filename}: no file after download",
                        now=self._clock(),
                        job=job,
                    )
                )
                return
            self.post(ev.FileDownloaded(index=index, now=self._clock(), job=job))
        self.post(ev.DownloadFinished(now=self._clock(), job=job))

    def _auth_for(self, source: str) -> ContentAuth | None:
        return self.content_auth if source == "content" else None

    async def _install(self, manifest: Manifest, job: int) -> None:
        async with self._install_slots:
            workdir = self.options.work_dir / f"job-{job}"
            try:
                files = await asyncio.to_thread(self._prepare, manifest, workdir)
            except (OSError, ValueError, DownloadError) as exc:
                self.post(
                    ev.InstallFinished(
                        ok=False,
                        message=f"cannot prepare the install folder: {exc}",
                        now=self._clock(),
                        job=job,
                    )
                )
                return
            except _MissingFile as exc:
                self.post(
                    ev.InstallFinished(ok=False, message=str(exc), now=self._clock(), job=job)
                )
                return
            request = InstallRequest(manifest=manifest, files=files, workdir=workdir)
            finished = False
            try:
                async with contextlib.aclosing(self.link.install(request)) as events:
                    async for item in events:
                        now = self._clock()
                        match item:
                            case Step(message=message, stream=stream):
                                self.bus.publish(
                                    InstallOutput(device=self.name, line=message, stream=stream)
                                )
                                self.post(ev.InstallStep(message=message, now=now, job=job))
                            case DeviceReport(report=report):
                                self._relay(report, job, now)
                            case Finished(ok=ok, message=message):
                                finished = True
                                self.post(
                                    ev.InstallFinished(ok=ok, message=message, now=now, job=job)
                                )
            finally:
                await asyncio.to_thread(shutil.rmtree, workdir, True)
            if not finished:
                self.post(
                    ev.InstallFinished(
                        ok=False,
                        message="the link ended without a result",
                        now=self._clock(),
                        job=job,
                    )
                )

    def _relay(self, report: StatusReport, job: int, now: float) -> None:
        """A bridged device's own report becomes the install phase's progress or result; the
        reports it leads to are labelled with the link as their source."""
        status, message = report.status, report.message or report.status.value
        event: ev.Event
        if status.is_error:
            event = ev.InstallFinished(ok=False, message=message, now=now, job=job)
        elif status in (Status.INSTALL_SUCCESS, Status.INSTALLED_VERSION):
            event = ev.InstallFinished(ok=True, message=report.message, now=now, job=job)
        else:
            self.bus.publish(InstallOutput(device=self.name, line=message, stream="device"))
            event = ev.InstallStep(message=message, now=now, job=job)
        self._from_link.add(id(event))
        self.post(event)

    def _prepare(self, manifest: Manifest, workdir: Path) -> tuple[Path, ...]:
        """A fresh folder holding the verified files under their safe names (thread)."""
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        files = []
        for index, item in enumerate(manifest.items):
            cached = self._files.get(index) or self.downloader.cached(
                item, self._auth_for(item.source.value)
            )
            if cached is None:
                raise _MissingFile(f"{item.filename}: not in the download cache any more")
            files.append(materialize(cached, workdir, item.filename))
        return tuple(files)

    # -- channel state -------------------------------------------------------------------------

    def on_channel_state(self, state: ChannelState) -> None:
        """Give this to the channel as its `on_state` callback."""
        self.bus.publish(ConnectionChanged.of(self.name, self.channel.protocol, state))
        self.outbox.wake()


class _MissingFile(Exception):
    pass
