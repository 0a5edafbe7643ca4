"""The only door between the TUI and the engine (no Textual here).

The app talks to a `Backend`: it drains `events` (an engine `EventQueue`) on a timer, feeds them
to its `FleetState`, and calls the actions (cancel, retry, apply, prefetch, export...). Actions
never block the app's loop for long: the slow ones are coroutines the app runs in workers.

- `FleetBackend(config)` runs the engine's `Fleet` in the app's own event loop.
- `FrozenBackend` (in `otatui.tui.sample`) serves fixed sample data on a fixed clock for snapshot
  tests, screenshots and Pilot tests.

No method returns or raises text holding a device token: errors are `BackendError` with one
human line, passed through the configuration's redactor.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from otatui.config import Config, DeviceConfig, TokenError
from otatui.engine.events import (
    EventBus,
    EventQueue,
    SessionError,
    TransferFinished,
)
from otatui.engine.export import write_csv, write_json_lines
from otatui.engine.fleet import Fleet
from otatui.engine.prefetch import DeviceFetch, FileState, Prefetch
from otatui.engine.redaction import Redactor
from otatui.murano.channel import ChannelError
from otatui.murano.content import ContentInfo, content_info, list_content
from otatui.murano.http import device_api_client
from otatui.otau.payload import PayloadItem, PayloadSource
from otatui.store import HistoryRow, StoreError
from otatui.transfer import CachedFile, ContentAuth
from otatui.tui.records import DeviceInfo

if TYPE_CHECKING:
    from otatui.tui.frozen import FrozenBackend

ExportFormat = Literal["csv", "json"]
HISTORY_ROWS = 5000
"""How many of the newest history rows seed the TUI at start-up."""
CONTENT_INFO_LIMIT = 200
"""Content ids whose info is read for the content list (the rest are listed without info)."""


class BackendError(Exception):
    """An action could not be done; ``str()`` is one human line (never a token)."""


@dataclass(frozen=True, slots=True)
class ContentEntry:
    """One id of the connector's content list, with its info when it could be read."""

    content_id: str
    info: ContentInfo | None = None
    error: str = ""

    @property
    def is_package(self) -> bool:
        return self.content_id.startswith("package_")


@dataclass(frozen=True, slots=True)
class StoredHistory:
    """What the store holds at start-up: rows oldest first, and outbox id -> history id."""

    rows: list[HistoryRow]
    outbox: dict[int, int]


@runtime_checkable
class Backend(Protocol):
    """What the TUI needs from the engine."""

    @property
    def title(self) -> str:
        """The site or configuration name (header)."""
        ...

    @property
    def devices(self) -> Sequence[DeviceInfo]: ...

    @property
    def events(self) -> EventQueue:
        """Every engine event, coalesced while it waits (drain it on a timer)."""
        ...

    def now(self) -> float:
        """The clock the screens use (fixed in the frozen backend)."""
        ...

    def local_time(self, when: float) -> time.struct_time:
        """`when` broken down for display (UTC in the frozen backend, so snapshots are stable)."""
        ...

    async def start(self) -> None:
        """Start the engine (sessions connect, history is readable). Everything that happens
        from here on arrives as events; `stored_history` holds what happened before."""
        ...

    async def stop(self) -> None: ...

    def stored_history(self, limit: int = HISTORY_ROWS) -> StoredHistory:
        """The newest `limit` history rows (oldest first) and the waiting outbox ids, as
        they were when `start` began (so no row is also seen as an event)."""
        ...

    def cancel(self, name: str) -> None:
        """Abort the device's update (INSTALL_ABORTED). Raises BackendError."""
        ...

    def retry(self, name: str) -> None:
        """Start the offered manifest again after a failure. Raises BackendError."""
        ...

    def apply(self, name: str) -> None:
        """Let an update waiting for confirmation (``apply = "confirm"``) be installed or pushed.
        Raises BackendError (also when nothing waits)."""
        ...

    async def prefetch(self, names: Sequence[str] | None = None) -> list[DeviceFetch]:
        """Download the payloads of the devices' offered manifests into the cache."""
        ...

    async def export_history(self, path: Path, fmt: ExportFormat, device: str | None = None) -> int:
        """Write the history (of one device) to `path` as CSV or JSON lines; rows written."""
        ...

    async def content_list(self) -> list[ContentEntry]:
        """The connector's content list (``GET /provision/download``) with each item's info."""
        ...

    def cached(self, device: str, item: PayloadItem) -> CachedFile | None:
        """The cached file of a payload item, if it can be used without a request."""
        ...


# -- the real engine ----------------------------------------------------------------------------


class FleetBackend:
    """The engine's `Fleet` for a configuration, run in the caller's (the app's) event loop."""

    def __init__(
        self, config: Config, *, fleet: Fleet | None = None, history_rows: int = HISTORY_ROWS
    ) -> None:
        self.config = config
        self.bus = fleet.bus if fleet is not None else EventBus()
        self.fleet = fleet if fleet is not None else Fleet(config, bus=self.bus)
        self._devices = [DeviceInfo.from_config(d) for d in config.devices]
        self._queue, self._unsubscribe = self.bus.queue()
        self._redact = Redactor.for_config(config)
        self._started = False
        self._stored: StoredHistory | None = None
        self.history_rows = history_rows
        """How many of the newest history rows seed the views (plus each device's latest offer
        and report, however old)."""

    @property
    def title(self) -> str:
        return self.config.site_name

    @property
    def devices(self) -> Sequence[DeviceInfo]:
        return self._devices

    @property
    def events(self) -> EventQueue:
        return self._queue

    @property
    def running(self) -> bool:
        """True between `start` and `stop`."""
        return self._started

    def now(self) -> float:
        return time.time()

    def local_time(self, when: float) -> time.struct_time:
        return time.localtime(when)

    async def start(self) -> None:
        if self._started:
            return
        try:
            await self.fleet.__aenter__()
        except StoreError as exc:
            raise BackendError(self._redact(str(exc))) from None
        self._started = True
        try:  # read before any session runs: later rows come as events
            self._stored = self._read_history(self.history_rows)
        except BackendError:
            await self.stop()
            raise
        self.fleet.start()

    async def stop(self) -> None:
        self._unsubscribe()
        if self._started:
            self._started = False
            await self.fleet.aclose()

    def stored_history(self, limit: int = HISTORY_ROWS) -> StoredHistory:
        if self._stored is None:
            return StoredHistory([], {})
        rows = self._stored.rows[-limit:] if limit > 0 else []
        return StoredHistory(rows, dict(self._stored.outbox))

    def _read_history(self, limit: int) -> StoredHistory:
        store = self.fleet.store
        if store is None:
            return StoredHistory([], {})
        try:
            rows = {r.id: r for r in store.history(limit=limit)}
            # each device's latest offer and report, however old (a quiet device's offer may
            # be far behind the newest rows of a busy fleet)
            for device in self.config.devices:
                for resource, direction in (("config_otau", "in"), ("otau_in", "out")):
                    recent = store.history(device=device.name, resource=resource, limit=20)
                    latest = next((r for r in recent if r.direction == direction), None)
                    if latest is not None:
                        rows.setdefault(latest.id, latest)
            outbox = {item.id: item.history_id for item in store.pending(limit=limit)}
        except StoreError as exc:
            raise BackendError(self._redact(str(exc))) from None
        return StoredHistory([rows[i] for i in sorted(rows)], outbox)

    def _command(self, name: str, what: str) -> None:
        try:
            match what:
                case "cancel":
                    self.fleet.cancel(name)
                case "retry":
                    self.fleet.retry(name)
                case "apply":
                    if not self.fleet.apply(name):
                        raise BackendError(f"{name}: no update is waiting to be applied")
        except LookupError as exc:
            raise BackendError(self._redact(str(exc).strip("'\""))) from None

    def cancel(self, name: str) -> None:
        self._command(name, "cancel")

    def retry(self, name: str) -> None:
        self._command(name, "retry")

    def apply(self, name: str) -> None:
        self._command(name, "apply")

    async def prefetch(self, names: Sequence[str] | None = None) -> list[DeviceFetch]:
        store = self.fleet.store
        if store is None:
            raise BackendError("the engine is not running")
        chosen = tuple(d for d in self.config.devices if names is None or d.name in names)
        config = self.config.model_copy(update={"devices": chosen})
        try:
            results = await Prefetch(config, store, on_device=self._publish_fetch).run()
        except StoreError as exc:
            raise BackendError(self._redact(str(exc))) from None
        return results

    def _publish_fetch(self, result: DeviceFetch) -> None:
        if result.error is not None:
            self.bus.publish(
                SessionError(
                    device=result.device, message=self._redact(f"prefetch: {result.error}")
                )
            )
        for f in result.files:
            self.bus.publish(
                TransferFinished(
                    device=result.device,
                    file=f.filename,
                    ok=f.state is not FileState.FAILED,
                    size=f.size or 0,
                    sha256=f.sha256 or "",
                    from_cache=f.state is FileState.CACHED,
                    message=self._redact(f.error or "prefetched"),
                )
            )

    async def export_history(self, path: Path, fmt: ExportFormat, device: str | None = None) -> int:
        store = self.fleet.store
        if store is None:
            raise BackendError("the engine is not running")
        rows = list(store.iter_history(device=device))
        return await asyncio.to_thread(_write_export, path, fmt, rows, self._redact)

    async def content_list(self) -> list[ContentEntry]:
        token = self._any_token()
        base = self.config.connector.base_url
        ca = self.config.connector.ca_file
        try:
            async with device_api_client(ca_file=str(ca) if ca else None) as client:
                ids = await list_content(client, base, token)
                out: list[ContentEntry] = []
                for i, content_id in enumerate(ids):
                    if i >= CONTENT_INFO_LIMIT:
                        out.append(ContentEntry(content_id))
                        continue
                    try:
                        info = await content_info(client, base, token, content_id)
                    except ChannelError as exc:
                        out.append(ContentEntry(content_id, error=self._redact(str(exc))))
                    else:
                        out.append(ContentEntry(content_id, info))
                return out
        except ChannelError as exc:
            raise BackendError(self._redact(str(exc))) from None

    def _any_token(self) -> str:
        for device in self.config.devices:
            token = _token(device)
            if token:
                return token
        raise BackendError("no device has a token yet: the content list needs one")

    def cached(self, device: str, item: PayloadItem) -> CachedFile | None:
        downloader = self.fleet.downloader
        if downloader is None:
            return None
        auth = None
        if item.source is PayloadSource.CONTENT:
            try:
                token = _token(self.config.device(device))
            except LookupError:
                return None
            if token is None:
                return None
            auth = ContentAuth(self.config.connector.base_url, token)
        try:
            return downloader.cached(item, auth)
        except StoreError:
            return None


def _token(device: DeviceConfig) -> str | None:
    with contextlib.suppress(TokenError):
        return device.token_value()
    return None


def _write_export(
    path: Path, fmt: ExportFormat, rows: list[HistoryRow], redact: Redactor | None
) -> int:
    """Write rows to `path` (thread); BackendError with one line when the file cannot be
    written."""
    identity = redact if redact is not None else (lambda s: s)
    try:
        with path.open("w", encoding="utf-8", newline="") as out:
            if fmt == "csv":
                return write_csv(rows, out, identity)
            return write_json_lines(rows, out, identity)
    except OSError as exc:
        raise BackendError(f"cannot write {path}: {exc.strerror or exc}") from None


def __getattr__(name: str) -> type[FrozenBackend]:
    """`FrozenBackend` lives in `otatui.tui.frozen` (it imports this module)."""
    if name == "FrozenBackend":
        from otatui.tui.frozen import FrozenBackend

        return FrozenBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
