"""A backend with fixed sample data on a fixed clock, for snapshot tests, screenshots and Pilot.

The sample site (`otatui.tui.sample`): its past comes as stored history rows (`stored_history`),
its present as engine events waiting in `events` when the app starts. Actions are recorded in
`calls` and answered with the events the engine would publish, so Pilot tests see the screens
react.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

from otatui.engine.events import Event, EventQueue, PhaseChanged, ReportQueued
from otatui.engine.prefetch import DeviceFetch, FileFetch, FileState
from otatui.murano.content import ContentInfo
from otatui.otau.payload import PayloadItem
from otatui.otau.status import Status
from otatui.transfer import CachedFile
from otatui.tui.backend import (
    HISTORY_ROWS,
    BackendError,
    ContentEntry,
    ExportFormat,
    StoredHistory,
    _write_export,
)
from otatui.tui.records import DeviceInfo
from otatui.tui.sample import (
    DEVICES,
    FROZEN_NOW,
    PUMP_BIN_SHA,
    PUMP_V2,
    SENSOR_V,
    SITE,
    link_changed,
    sample_events,
    sample_history,
)

__all__ = ["DEVICES", "FROZEN_NOW", "FrozenBackend"]


class FrozenBackend:
    """Fixed sample data on a fixed clock (see the module docstring)."""

    def __init__(
        self, *, now: float = FROZEN_NOW, title: str = SITE, devices: Sequence[DeviceInfo] = DEVICES
    ) -> None:
        self._now = now
        self._title = title
        self._devices = list(devices)
        self._queue = EventQueue()
        self.calls: list[tuple[str, str]] = []
        self.awaiting = {"sensor-1"}
        """Devices whose update waits for the technician's apply."""
        self._outbox_seq = 5000
        self.history = sample_history(now)
        self._offered = {
            r.device: r.version or "" for r in self.history.rows if r.resource == "config_otau"
        }
        for event in sample_events(now):
            self._queue.put(event)

    @property
    def title(self) -> str:
        return self._title

    @property
    def devices(self) -> Sequence[DeviceInfo]:
        return self._devices

    @property
    def events(self) -> EventQueue:
        return self._queue

    def now(self) -> float:
        return self._now

    def local_time(self, when: float) -> time.struct_time:
        return time.gmtime(when)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def stored_history(self, limit: int = HISTORY_ROWS) -> StoredHistory:
        rows = self.history.rows[-limit:]
        return StoredHistory(rows, dict(self.history.outbox))

    def publish(self, event: Event) -> None:
        """Put an engine event in the queue (tests drive the screens with it)."""
        self._queue.put(event)

    def _known(self, name: str) -> DeviceInfo:
        for d in self._devices:
            if d.name == name:
                return d
        raise BackendError(f"no running update session for device {name!r}")

    def _report(self, name: str, version: str, status: Status, message: str = "") -> None:
        self._outbox_seq += 1
        self.publish(
            ReportQueued(
                device=name,
                time=self._now,
                outbox_id=self._outbox_seq,
                version=version,
                status=status.value,
                message=message,
                source=self._known(name).protocol,
            )
        )

    def cancel(self, name: str) -> None:
        self._known(name)
        self.calls.append(("cancel", name))
        self._report(
            name, self._offered.get(name, ""), Status.INSTALL_ABORTED, "cancelled by the technician"
        )
        self.publish(PhaseChanged(device=name, time=self._now, phase="idle"))

    def retry(self, name: str) -> None:
        self._known(name)
        self.calls.append(("retry", name))
        self._report(name, self._offered.get(name, ""), Status.INIT)
        self.publish(PhaseChanged(device=name, time=self._now, phase="testing"))

    def apply(self, name: str) -> None:
        info = self._known(name)
        if name not in self.awaiting:
            raise BackendError(f"{name}: no update is waiting to be applied")
        self.awaiting.discard(name)
        self.calls.append(("apply", name))
        self._report(name, SENSOR_V, Status.INSTALL, "applied by the technician")
        self.publish(
            PhaseChanged(device=name, time=self._now, phase="installing", version=SENSOR_V)
        )
        self.publish(
            link_changed(name, self._now, info.link_kind, "transferring", "sending the files")
        )

    async def prefetch(self, names: Sequence[str] | None = None) -> list[DeviceFetch]:
        self.calls.append(("prefetch", ",".join(names or ())))
        await asyncio.sleep(0)
        out = []
        for d in self._devices:
            if names is not None and d.name not in names:
                continue
            if d.role == "monitor":
                continue
            files = [
                FileFetch(
                    "pump-fw-2.1.0.bin", "content", True, FileState.CACHED, 5_592_405, PUMP_BIN_SHA
                )
            ]
            out.append(
                DeviceFetch(
                    device=d.name,
                    version=PUMP_V2,
                    name="Pump controller",
                    manifest_type="URL_LIST",
                    files=files,
                )
            )
        return out

    async def export_history(self, path: Path, fmt: ExportFormat, device: str | None = None) -> int:
        self.calls.append(("export", str(path)))
        rows = [r for r in self.history.rows if device is None or r.device == device]
        return await asyncio.to_thread(_write_export, path, fmt, rows, None)

    async def content_list(self) -> list[ContentEntry]:
        return [
            ContentEntry(
                "gw-1.4.0.tar",
                ContentInfo("application/x-tar", 2_097_152, self._now - 4 * 86400, "gateway agent"),
            ),
            ContentEntry(
                "package_pump_2.1.0",
                ContentInfo("application/json", 412, self._now - 86400, "pump bundle"),
            ),
            ContentEntry(
                "pump-fw-2.1.0.bin",
                ContentInfo("application/octet-stream", 5_592_405, self._now - 86400, ""),
            ),
            ContentEntry(
                "sensor-3.0.2.hex", ContentInfo("text/plain", 184_320, self._now - 2 * 86400, "")
            ),
            ContentEntry("valve-1.2.0.zip", None, "info: HTTP 500"),
        ]

    def cached(self, device: str, item: PayloadItem) -> CachedFile | None:
        if item.filename == "pump-fw-2.1.0.bin" and device in ("hvac-1", "pump-8"):
            return CachedFile(Path("/cache") / PUMP_BIN_SHA, PUMP_BIN_SHA, 5_592_405)
        if item.filename == "sensor-3.0.2.hex":
            return CachedFile(Path("/cache") / ("5a" * 32), "5a" * 32, 184_320)
        return None
