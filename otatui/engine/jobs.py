"""The work a session runs for its update machine: checks, downloads, and the install or push.

Each job runs in its own task, started by a machine action that carries a job number, and only
posts events back to the session's actor (tagged with that number, so the machine ignores the
late results of aborted work). The install goes through the device's link: the install hook for
an agent, the serial or LAN link for a bridged device. What a link yields becomes:

- `Step` -> `InstallOutput` + a rate-limited INSTALL_STEP;
- `Pushed` -> `TransferProgress`/`TransferFinished` with direction "push" (`otatui.engine.push`);
- `LinkStatus` -> `LinkChanged`;
- `DeviceReport` -> relayed as `otatui.engine.relay` describes;
- `Finished` -> the install's result.

The apply gate (`otatui.engine.gate`) holds the event that would start the install.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from otatui.engine.events import (
    EventBus,
    InstallOutput,
    LinkChanged,
    SessionError,
    TransferFinished,
    TransferProgress,
)
from otatui.engine.gate import ApplyGate
from otatui.engine.push import PushMeter
from otatui.engine.relay import (
    DeviceClock,
    DeviceStep,
    FromLink,
    QueueItem,
    Relay,
    as_install_step,
    bounded,
    relay_kind,
)
from otatui.links.link import (
    DeviceReport,
    Finished,
    InstallRequest,
    Link,
    LinkStatus,
    Pushed,
    Step,
)
from otatui.otau import events as ev
from otatui.otau.manifest import Manifest
from otatui.otau.payload import PayloadItem
from otatui.otau.status import StatusReport
from otatui.store import StoreError
from otatui.transfer import CachedFile, ContentAuth, Downloader, DownloadError, materialize

MIN_FREE_BYTES = 16 * 1024 * 1024

Pins = Callable[[Manifest], Mapping[int, str]]
"""sha256 of payload files verified earlier (`otatui fetch`), by index, for a manifest."""


class Jobs:
    """Runs one session's checks, downloads and installs (see the module docstring)."""

    def __init__(
        self,
        *,
        name: str,
        bus: EventBus,
        downloader: Downloader,
        content_auth: ContentAuth | None,
        link: Link,
        work_dir: Path,
        install_slots: asyncio.Semaphore,
        gate: ApplyGate,
        post: Callable[[QueueItem], None],
        clock: Callable[[], float],
        pins: Pins | None = None,
    ) -> None:
        self.name = name
        self.bus = bus
        self.downloader = downloader
        self.content_auth = content_auth
        self.link = link
        self.work_dir = work_dir
        self.gate = gate
        self._install_slots = install_slots
        self._post = post
        self._clock = clock
        self._pins = pins
        self._files: dict[int, CachedFile] = {}  # index -> verified file of the current job
        self._files_job = -1

    # -- checks --------------------------------------------------------------------------------

    async def checks(self, manifest: Manifest, job: int) -> None:
        cache = self.downloader.cache_dir
        try:
            cache.mkdir(mode=0o700, parents=True, exist_ok=True)  # private, as the cache makes it
            free = shutil.disk_usage(cache).free
        except OSError as exc:
            self._result(False, f"cache folder unusable: {exc}", job)
            return
        if manifest.needs_download:
            mib = free // 2**20
            self._post(
                ev.TestStep(message=f"{mib} MiB free for downloads", now=self._clock(), job=job)
            )
            if free < MIN_FREE_BYTES:
                self._result(False, f"only {mib} MiB free in the download cache", job)
                return
        else:
            await self.gate.wait(manifest.version)  # nothing to download: the install is next
        self._result(True, "ready", job)

    def _result(self, ok: bool, message: str, job: int) -> None:
        self._post(ev.TestResult(ok=ok, message=message, now=self._clock(), job=job))

    # -- download ------------------------------------------------------------------------------

    async def download(self, manifest: Manifest, job: int) -> None:
        if self._files_job != job:
            self._files, self._files_job = {}, job
        items = self._items(manifest)
        for index, item in enumerate(items):
            if index in self._files:
                continue
            if not await self._download_file(item, index, len(items), job):
                return
            self._post(ev.FileDownloaded(index=index, now=self._clock(), job=job))
        await self.gate.wait(manifest.version)
        self._post(ev.DownloadFinished(now=self._clock(), job=job))

    async def _download_file(self, item: PayloadItem, index: int, count: int, job: int) -> bool:
        fetched = False  # any bytes moved (else the file came from the cache)
        try:
            async with contextlib.aclosing(
                self.downloader.download(item, self._auth_for(item))
            ) as progress:
                async for p in progress:
                    now = self._clock()
                    self.bus.publish(
                        TransferProgress(
                            device=self.name,
                            time=now,
                            file=item.filename,
                            index=index,
                            count=count,
                            done=p.done,
                            total=p.total,
                            rate=p.rate_bytes_per_s,
                            resumed=p.resumed,
                            resumed_at=p.resumed_at,
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
                        self._post(
                            ev.DownloadProgress(
                                index=index, done=p.done, total=p.total, now=now, job=job
                            )
                        )
        except DownloadError as exc:
            message = str(exc)
            self.bus.publish(
                TransferFinished(device=self.name, file=item.filename, ok=False, message=message)
            )
            self._post(ev.DownloadFailed(message=message, now=self._clock(), job=job))
            return False
        if index not in self._files:
            message = f"{item.filename}: no file after download"
            self._post(ev.DownloadFailed(message=message, now=self._clock(), job=job))
            return False
        return True

    def _items(self, manifest: Manifest) -> list[PayloadItem]:
        """The manifest's payload items; an unpinned one that `otatui fetch` verified for this
        very manifest is pinned to that file, so it is used from the cache however old."""
        pins: Mapping[int, str] = {}
        if self._pins is not None:
            try:
                pins = self._pins(manifest)
            except StoreError as exc:
                self.bus.publish(SessionError(device=self.name, message=str(exc)))
        return [
            dataclasses.replace(item, sha256=pins[i]) if not item.pinned and i in pins else item
            for i, item in enumerate(manifest.items)
        ]

    def _auth_for(self, item: PayloadItem) -> ContentAuth | None:
        return self.content_auth if item.source.value == "content" else None

    # -- install -------------------------------------------------------------------------------

    async def install(self, manifest: Manifest, job: int) -> None:
        async with self._install_slots:
            workdir = self.work_dir / f"job-{job}"
            try:
                items = self._items(manifest)
                files = await asyncio.to_thread(self._prepare, items, workdir)
            except (OSError, ValueError, DownloadError) as exc:
                self._finished(False, f"cannot prepare the install folder: {exc}", job)
                return
            except _MissingFile as exc:
                self._finished(False, str(exc), job)
                return
            request = InstallRequest(manifest=manifest, files=files, workdir=workdir)
            meter = PushMeter(self.name)
            clock = DeviceClock(push_started=self._clock())
            finished = False
            try:
                async with contextlib.aclosing(self.link.install(request)) as events:
                    async for item in events:
                        if isinstance(item, Finished):
                            finished = True
                            self._end_push(meter, item)
                        self._on_link_event(item, meter, clock, manifest.version, job)
            except asyncio.CancelledError:
                self._end_push(meter, Finished(False, "cancelled"))
                raise
            except Exception as exc:  # a link must not raise; if one does, say so, never hang
                if not finished:
                    finished = True
                    message = f"the {self.link.source} link failed: {exc}"
                    self._end_push(meter, Finished(False, message))
                    self._finished(False, message, job)
            finally:
                await asyncio.to_thread(shutil.rmtree, workdir, True)
            if not finished:
                self._end_push(meter, Finished(False, "the link ended without a result"))
                self._finished(False, "the link ended without a result", job)

    def _on_link_event(
        self,
        item: Step | DeviceReport | Pushed | LinkStatus | Finished,
        meter: PushMeter,
        clock: DeviceClock,
        version: str,
        job: int,
    ) -> None:
        now = self._clock()
        match item:
            case Step(message=message, stream=stream):
                self.bus.publish(InstallOutput(device=self.name, line=message, stream=stream))
                self._post(FromLink(ev.InstallStep(message=message, now=now, job=job)))
            case Pushed():
                events, line = meter.update(item, now)
                for event in events:
                    self.bus.publish(event)
                if line is not None:
                    self._post(FromLink(ev.InstallStep(message=line, now=now, job=job)))
            case LinkStatus(state=state, detail=detail):
                self.bus.publish(
                    LinkChanged(
                        device=self.name,
                        time=now,
                        link=self.link.source,
                        state=state,
                        detail=detail,
                    )
                )
            case DeviceReport(report=report, time=said):
                self._relay(report, said, clock, version, job, now)
            case Finished(ok=ok, message=message):
                self._finished(ok, message, job)

    def _relay(
        self,
        report: StatusReport,
        said: float | None,
        clock: DeviceClock,
        version: str,
        job: int,
        now: float,
    ) -> None:
        """A bridged device's report, as `otatui.engine.relay` describes."""
        text = f"{report.status.value} {report.version}" + (
            f": {report.message}" if report.message else ""
        )
        self.bus.publish(InstallOutput(device=self.name, time=now, line=text, stream="device"))
        kind = relay_kind(report, version)
        if kind is Relay.OTHER_VERSION:
            return  # shown above; not part of this update
        kept = clock.time_of(said, now)
        if kept.why and clock.refused == 1:  # said once per push
            line = (
                f"the device's time of its {report.status.value} is not kept ({kept.why}):"
                " a report with an implausible time keeps the time it reached otatui"
            )
            self.bus.publish(InstallOutput(device=self.name, time=now, line=line, stream="device"))
        match kind:
            case Relay.ONE_FOR_ONE:
                step = as_install_step(report)
                self._post(DeviceStep(report=step, now=kept.at, job=job))
            case Relay.SUCCESS:
                done = ev.InstallFinished(ok=True, message=report.message, now=now, job=job)
                self._post(FromLink(done, at=kept.at))
            case Relay.FAILURE:
                own = bounded(report)
                message = own.message or own.status.value
                failed = ev.InstallFinished(ok=False, message=message, now=now, job=job)
                self._post(FromLink(failed, own_final=own, at=kept.at))

    def _finished(self, ok: bool, message: str, job: int) -> None:
        done = ev.InstallFinished(ok=ok, message=message, now=self._clock(), job=job)
        self._post(FromLink(done))

    def _end_push(self, meter: PushMeter, finished: Finished) -> None:
        """A file whose push started and never completed is reported failed."""
        if finished.ok:
            return
        for name in meter.unfinished():
            self.bus.publish(
                TransferFinished(
                    device=self.name,
                    file=name,
                    ok=False,
                    message=finished.message or "the push did not complete",
                    direction="push",
                )
            )

    def _prepare(self, items: list[PayloadItem], workdir: Path) -> tuple[Path, ...]:
        """A fresh folder holding the verified files under their safe names (thread)."""
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        files = []
        for index, item in enumerate(items):
            cached = self._files.get(index) or self.downloader.cached(item, self._auth_for(item))
            if cached is None:
                raise _MissingFile(f"{item.filename}: not in the download cache any more")
            files.append(materialize(cached, workdir, item.filename))
        return tuple(files)


class _MissingFile(Exception):
    pass
