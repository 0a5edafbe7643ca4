"""The work a simulated device does for the update machine: checks, downloads, install.

Each method answers one start action of `otatui.otau.machine.UpdateMachine` (`RunChecks`,
`StartDownload`, `StartInstall`) with the events the machine expects, tagged with the job
number, through `post`. `fail` makes one step fail with a "simulated ..." message; `step_delay`
seconds pass before each step so that a demo can be watched. "Installing" writes the payload
files under `<folder>/installed/<version>/` and then the version into `<folder>/version`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from otatui.otau import events as ev
from otatui.otau.manifest import Manifest
from otatui.otau.payload import PayloadSource, safe_filename
from otatui.transfer import CachedFile, ContentAuth, Downloader, DownloadError, materialize

FAILURES = ("test", "download", "install")
VERSION_FILE = "version"


class DeviceWork:
    """Checks, downloads and installs of one simulated device (see the module docstring)."""

    def __init__(
        self,
        folder: Path,
        *,
        post: Callable[[ev.Event], None],
        now: Callable[[], float],
        fail: str | None = None,
        step_delay: float = 0.2,
    ) -> None:
        if fail is not None and fail not in FAILURES:
            raise ValueError(f"fail must be one of {', '.join(FAILURES)}, not {fail!r}")
        if step_delay < 0:
            raise ValueError("step_delay must not be negative")
        self.folder = folder
        self.post = post
        self.now = now
        self.fail = fail
        self.step_delay = step_delay
        self._files: dict[int, CachedFile] = {}
        self._files_job = -1

    async def checks(self, manifest: Manifest, job: int) -> None:
        await asyncio.sleep(self.step_delay)
        free = shutil.disk_usage(self.folder).free // 2**20
        self.post(ev.TestStep(message=f"{free} MiB free", now=self.now(), job=job))
        await asyncio.sleep(self.step_delay)
        if self.fail == "test":
            message = "simulated test failure: the device refuses this update"
            self.post(ev.TestResult(ok=False, message=message, now=self.now(), job=job))
        else:
            self.post(ev.TestResult(ok=True, message="ready", now=self.now(), job=job))

    async def download(
        self,
        downloader: Downloader,
        auth: ContentAuth,
        manifest: Manifest,
        job: int,
        files_done: tuple[int, ...],
    ) -> None:
        if self._files_job != job:
            self._files, self._files_job = {}, job
        await asyncio.sleep(self.step_delay)
        if self.fail == "download":
            message = "simulated download failure: the link to the server broke"
            self.post(ev.DownloadFailed(message=message, now=self.now(), job=job))
            return
        for index, item in enumerate(manifest.items):
            if index in self._files:
                continue
            item_auth = auth if item.source is PayloadSource.CONTENT else None
            try:
                async with contextlib.aclosing(downloader.download(item, item_auth)) as progress:
                    async for p in progress:
                        if p.result is not None:
                            self._files[index] = p.result
                        else:
                            self.post(
                                ev.DownloadProgress(
                                    index=index,
                                    done=p.done,
                                    total=p.total,
                                    now=self.now(),
                                    job=job,
                                )
                            )
            except DownloadError as exc:
                self.post(ev.DownloadFailed(message=str(exc), now=self.now(), job=job))
                return
            if index not in self._files:
                message = f"{item.filename}: no file after the download"
                self.post(ev.DownloadFailed(message=message, now=self.now(), job=job))
                return
            self.post(ev.FileDownloaded(index=index, now=self.now(), job=job))
        self.post(ev.DownloadFinished(now=self.now(), job=job))

    async def install(self, manifest: Manifest, job: int) -> None:
        await asyncio.sleep(self.step_delay)
        count = len(manifest.items)
        self.post(ev.InstallStep(message=f"writing {count} file(s)", now=self.now(), job=job))
        await asyncio.sleep(self.step_delay)
        if self.fail == "install":
            message = "simulated install failure: flash write error"
            self.post(ev.InstallFinished(ok=False, message=message, now=self.now(), job=job))
            return
        files = [self._files.get(i) for i in range(count)]
        try:
            await asyncio.to_thread(self._write_install, manifest, files)
        except (OSError, DownloadError) as exc:
            message = f"install failed: {exc}"
            self.post(ev.InstallFinished(ok=False, message=message, now=self.now(), job=job))
            return
        message = f"{count} file(s) written" if count else "settings applied"
        self.post(ev.InstallFinished(ok=True, message=message, now=self.now(), job=job))

    def _write_install(self, manifest: Manifest, files: list[CachedFile | None]) -> None:
        """Thread: the files under installed/<version>/, then the version file."""
        target = self.folder / "installed" / (safe_filename(manifest.version) or "version")
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for item, cached in zip(manifest.items, files, strict=True):
            if cached is None:
                raise DownloadError(f"{item.filename} is missing after the download")
            materialize(cached, target, item.filename, copy=True)
        if not manifest.items:
            (target / "payload.json").write_text(json.dumps(manifest.payload), encoding="utf-8")
        write_atomic(self.folder / VERSION_FILE, manifest.version + "\n")


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
