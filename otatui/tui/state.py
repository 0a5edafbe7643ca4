"""The TUI's model of the fleet, fed only by engine events and store rows (no Textual here).

`FleetState.apply(event)` takes any engine event (`otatui.engine.events`) and updates the views:
per device (`DeviceView`), the history (bounded, newest last), the file transfers (active and
recently finished) and the manifests seen (by version, with the devices each is offered to,
installed on and failed on). Events are dispatched by their `kind`, so an event type this module
does not import (a newer engine's) is still understood when its kind and fields match.
`load_history(rows)` seeds everything from the store at start-up.

`version` increments on every change and each `DeviceView.revision` records the version of its
last change, so a widget redraws only what changed since it last looked (`changed_since`).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from otatui.otau.status import Status
from otatui.store import HistoryRow
from otatui.tui.records import (
    NOT_SENT,
    SEEN,
    SENT,
    Category,
    DeviceInfo,
    DeviceView,
    FileTransfer,
    HistoryEntry,
    ManifestVersion,
    ManifestView,
    OfferedManifest,
    OutputLine,
    manifest_identity,
)
from otatui.tui.stored import entry_from_row, manifest_line, offered_from_row

__all__ = [
    "Category",
    "DeviceInfo",
    "DeviceView",
    "FileTransfer",
    "FleetState",
    "HistoryEntry",
    "ManifestVersion",
    "ManifestView",
    "OfferedManifest",
    "OutputLine",
]

CONFIG_OTAU = "config_otau"
OTAU_IN = "otau_in"
HISTORY_ENTRIES = 5000
FINISHED_TRANSFERS = 200
PENDING_OUTBOX = 100_000
"""Outbox ids remembered to mark their history entry sent (bounded: oldest forgotten)."""

_CONTACT_STATES = ("connected",)


class FleetState:
    """Per-device views, history, transfers and manifests, kept current by engine events."""

    def __init__(
        self,
        devices: Sequence[DeviceInfo],
        *,
        clock: Callable[[], float] = time.time,
        history_limit: int = HISTORY_ENTRIES,
        finished_limit: int = FINISHED_TRANSFERS,
    ) -> None:
        self.clock = clock
        self.devices: dict[str, DeviceView] = {
            d.name: DeviceView(info=d, installed_version=d.installed_version) for d in devices
        }
        self.history: deque[HistoryEntry] = deque(maxlen=history_limit)
        self.finished: deque[FileTransfer] = deque(maxlen=finished_limit)
        self.manifests: dict[str, ManifestVersion] = {}
        """Every manifest seen, by version; each version keeps its distinct manifests."""
        self._offered_view: dict[str, ManifestView] = {}
        """Each device's current offer (the `ManifestView` it is in `offered_to` of)."""
        self.version = 0
        self.history_version = 0
        """`version` at the last change of `history` (the history screen redraws on it)."""
        self.events_applied = 0
        self._outbox: OrderedDict[int, HistoryEntry] = OrderedDict()
        self._handlers: dict[str, Callable[[DeviceView, Any], None]] = {
            "connection": self._connection,
            "manifest": self._manifest,
            "report": self._report,
            "observed": self._observed,
            "delivered": self._delivered,
            "phase": self._phase,
            "progress": self._progress,
            "transfer": self._transfer_finished,
            "install_output": self._install_output,
            "error": self._error,
            "link": self._link,
            "awaiting_apply": self._awaiting_apply,
        }

    # -- reading -----------------------------------------------------------------------------

    @property
    def transfers(self) -> list[FileTransfer]:
        """Active transfers (oldest first) then recently finished ones (newest first)."""
        active = [t for d in self.devices.values() for t in d.active_transfers]
        active.sort(key=lambda t: t.started)
        return active + list(reversed(self.finished))

    @property
    def active_transfers(self) -> list[FileTransfer]:
        return [t for d in self.devices.values() for t in d.active_transfers]

    def counts(self) -> dict[Category, int]:
        """How many devices are in each category (every category present, maybe 0)."""
        out = dict.fromkeys(Category, 0)
        for device in self.devices.values():
            out[device.category] += 1
        return out

    def connection_counts(self) -> dict[str, int]:
        """How many devices' channels are in each connection state."""
        out: dict[str, int] = {}
        for device in self.devices.values():
            out[device.connection] = out.get(device.connection, 0) + 1
        return out

    def changed_since(self, version: int) -> list[DeviceView]:
        """Devices changed after `version` (a widget passes the version it last drew)."""
        return [d for d in self.devices.values() if d.revision > version]

    def manifests_by_version(self) -> list[ManifestVersion]:
        """Every version seen, newest first (by the time it was last offered)."""
        return sorted(self.manifests.values(), key=lambda m: m.last_seen, reverse=True)

    def manifest_views(self) -> list[ManifestView]:
        """Every distinct manifest seen, by version then name."""
        return [v for group in self.manifests.values() for v in group.views]

    def _view(self, d: DeviceView, version: str) -> ManifestView | None:
        """The manifest of `version` the device saw (None when the version was never offered)."""
        group = self.manifests.get(version)
        if group is None or not group.variants:
            return None
        return group.view_for(d.name, self._offered_view.get(d.name))

    # -- events ------------------------------------------------------------------------------

    def apply(self, event: object) -> bool:
        """Take one engine event; True when something changed. Unknown events are ignored."""
        kind = getattr(event, "kind", None)
        if not isinstance(kind, str):
            return False
        handler = self._handlers.get(kind) or self._handlers.get(_kind_of_class(event))
        name = getattr(event, "device", None)
        if handler is None or not isinstance(name, str):
            return False
        device = self.devices.get(name)
        if device is None:
            return False
        self.events_applied += 1
        self.version += 1
        device.revision = self.version
        handler(device, event)
        return True

    def apply_all(self, events: Iterable[object]) -> int:
        """Apply a batch (what the app drains from its queue each tick); how many changed."""
        return sum(1 for e in events if self.apply(e))

    def _connection(self, d: DeviceView, e: Any) -> None:
        d.connection = str(e.state)
        d.connection_reason = str(e.reason or "")
        d.retry_at = e.retry_at
        d.attempt = int(e.attempt or 0)
        if d.connection in _CONTACT_STATES:
            d.last_seen = e.time

    def _manifest(self, d: DeviceView, e: Any) -> None:
        offered = OfferedManifest(
            version=e.version,
            name=e.name,
            type=e.type,
            description=e.description,
            items=tuple(e.items),
            valid=bool(e.valid),
            reason=e.reason,
            source=e.source,
            time=e.time,
        )
        self._offer(d, offered)
        d.last_seen = e.time
        self._add_history(
            d,
            HistoryEntry(
                time=e.time,
                device=d.name,
                direction="in",
                resource=CONFIG_OTAU,
                version=e.version,
                message=manifest_line(offered),
                source=e.source or d.info.protocol,
                note=f"rejected: {e.reason}" if not e.valid else "",
            ),
        )

    def _report(self, d: DeviceView, e: Any) -> None:
        entry = HistoryEntry(
            time=e.time,
            device=d.name,
            direction="out",
            resource=OTAU_IN,
            version=e.version,
            status=e.status,
            message=e.message,
            source=e.source or d.info.protocol,
            cloud=NOT_SENT,
            outbox_id=e.outbox_id,
        )
        self._outbox[e.outbox_id] = entry
        while len(self._outbox) > PENDING_OUTBOX:
            self._outbox.popitem(last=False)
        self._status(d, e.version, e.status, e.message, e.time, sent=False)
        self._add_history(d, entry)

    def _observed(self, d: DeviceView, e: Any) -> None:
        # a monitor reads otau_in: otatui sent nothing (and, sampled, saw the value at each read)
        self._status(d, e.version, e.status, e.message, e.time, sent=None)
        d.last_seen = max(d.last_seen or 0.0, e.time)
        self._add_history(
            d,
            HistoryEntry(
                time=e.time,
                device=d.name,
                direction="out",
                resource=OTAU_IN,
                version=e.version,
                status=e.status,
                message=e.message,
                source=e.source or "http",
                cloud=SEEN,
                note="sampled: the value at a read" if getattr(e, "sampled", False) else "observed",
            ),
        )

    def _delivered(self, d: DeviceView, e: Any) -> None:
        d.last_seen = e.time
        latest_sent = False
        for outbox_id in e.outbox_ids:
            entry = self._outbox.pop(outbox_id, None)
            if entry is None:
                continue
            entry.cloud = SENT
            entry.outbox_id = None
            latest_sent = latest_sent or (
                entry.status == d.last_status and entry.version == d.last_status_version
            )
        if latest_sent:
            d.last_status_sent = True
        self.history_version = self.version

    def _phase(self, d: DeviceView, e: Any) -> None:
        d.awaiting_apply = None  # a wait for apply ends with the next phase change
        d.phase = str(e.phase)
        d.phase_version = e.version
        if e.installed_version:
            self._installed(d, e.installed_version)
        if d.phase == "idle":
            self._stop_transfers(d, directions=("download", "push"))
        elif d.phase != "downloading":
            self._stop_transfers(d, directions=("download",))

    def _progress(self, d: DeviceView, e: Any) -> None:
        direction = getattr(e, "direction", "download")
        key = (direction, e.file)
        t = d.transfers.get(key)
        if t is None or t.finished:
            t = FileTransfer(device=d.name, file=e.file, direction=direction, started=e.time)
            d.transfers[key] = t
        t.index, t.count, t.done, t.total = e.index, e.count, e.done, e.total
        t.rate, t.updated = e.rate, e.time
        t.resumed = int(getattr(e, "resumed", 0) or 0)
        t.resumed_at = getattr(e, "resumed_at", None)

    def _transfer_finished(self, d: DeviceView, e: Any) -> None:
        direction = getattr(e, "direction", "download")
        key = (direction, e.file)
        t = d.transfers.get(key)
        if t is None or t.finished:
            t = FileTransfer(device=d.name, file=e.file, direction=direction, started=e.time)
            d.transfers[key] = t
        t.finished, t.ok, t.updated = True, bool(e.ok), e.time
        t.message, t.from_cache = e.message, bool(e.from_cache)
        t.size, t.sha256 = e.size, e.sha256
        if e.ok and e.size:
            t.done = t.total = e.size
        self.finished.append(t)
        if not e.ok:
            self._set_error(
                d, f"{e.file}: {e.message}" if e.message else f"{e.file} failed", e.time
            )

    def _install_output(self, d: DeviceView, e: Any) -> None:
        d.output.append(OutputLine(time=e.time, line=e.line, stream=e.stream))

    def _error(self, d: DeviceView, e: Any) -> None:
        self._set_error(d, e.message, e.time)
        self._add_history(
            d,
            HistoryEntry(
                time=e.time,
                device=d.name,
                direction="local",
                resource="error",
                message=e.message,
                source="otatui",
            ),
            timeline=False,
        )

    def _link(self, d: DeviceView, e: Any) -> None:
        d.link_state = str(getattr(e, "state", ""))
        d.link_detail = str(getattr(e, "detail", ""))

    def _awaiting_apply(self, d: DeviceView, e: Any) -> None:
        version = getattr(e, "version", None)
        d.awaiting_apply = str(version) if version is not None else "the update"

    # -- helpers -------------------------------------------------------------------------------

    def _set_error(self, d: DeviceView, message: str, at: float) -> None:
        d.error, d.error_time = message, at

    def _offer(self, d: DeviceView, offered: OfferedManifest) -> None:
        previous = d.offered.version if d.offered else None
        if previous != offered.version:
            d.awaiting_apply = None
            d.error = ""
        d.offered = offered
        key = offered.version or ""
        group = self.manifests.setdefault(key, ManifestVersion(version=key))
        identity = manifest_identity(offered)
        view = group.variants.get(identity)
        if view is None:
            view = ManifestView(
                version=key, manifest=offered, first_seen=offered.time, last_seen=offered.time
            )
            group.variants[identity] = view
        elif offered.time >= view.last_seen:
            view.manifest = offered
        before = self._offered_view.get(d.name)
        if before is not None and before is not view:
            before.offered_to.discard(d.name)
        self._offered_view[d.name] = view
        view.last_seen = max(view.last_seen, offered.time)
        view.first_seen = min(view.first_seen, offered.time)
        view.offered_to.add(d.name)
        view.seen_by.add(d.name)
        view.failed_on.discard(d.name)

    def _status(
        self,
        d: DeviceView,
        version: str,
        status: str,
        message: str,
        at: float,
        *,
        sent: bool | None,
    ) -> None:
        d.last_status, d.last_status_version = status, version
        d.last_message, d.last_status_time, d.last_status_sent = message, at, sent
        view = self._view(d, version)
        if status == Status.INSTALLED_VERSION.value:
            self._installed(d, version)
        elif status in (Status.TEST_ERROR, Status.DOWNLOAD_ERROR, Status.INSTALL_ERROR):
            if view is not None:
                view.failed_on.add(d.name)
        elif status == Status.INIT.value and view is not None:
            view.failed_on.discard(d.name)
        if status in (Status.INSTALL, Status.INSTALL_STEP) or (
            status in Status.__members__ and Status(status).is_final
        ):
            d.awaiting_apply = None

    def _installed(self, d: DeviceView, version: str) -> None:
        old = d.installed_version
        if old is not None and old != version and old in self.manifests:
            for other in self.manifests[old].variants.values():
                other.installed_on.discard(d.name)
        d.installed_version = version
        view = self._view(d, version)
        if view is not None:
            view.installed_on.add(d.name)
            view.failed_on.discard(d.name)

    def _stop_transfers(self, d: DeviceView, directions: tuple[str, ...]) -> None:
        for t in d.transfers.values():
            if not t.finished and t.direction in directions:
                t.finished, t.ok = True, None
                self.finished.append(t)

    def _add_history(self, d: DeviceView, entry: HistoryEntry, *, timeline: bool = True) -> None:
        self.history.append(entry)
        self.history_version = self.version
        if timeline:
            d.timeline.append(entry)

    # -- start-up ------------------------------------------------------------------------------

    def load_history(
        self, rows: Iterable[HistoryRow], outbox: Mapping[int, int] | None = None
    ) -> int:
        """Seed the views from stored history rows (oldest first); returns the rows taken.

        `outbox` maps outbox ids to history ids for reports still waiting, so a later
        `ReportsDelivered` marks their entries sent.
        """
        waiting = {history_id: outbox_id for outbox_id, history_id in (outbox or {}).items()}
        count = 0
        for row in rows:
            d = self.devices.get(row.device)
            if d is None:
                continue
            count += 1
            self._row(d, row, waiting.get(row.id))
        self.version += 1
        for d in self.devices.values():
            d.revision = self.version
        self.history_version = self.version
        return count

    def _row(self, d: DeviceView, row: HistoryRow, outbox_id: int | None) -> None:
        entry = entry_from_row(row, outbox_id)
        if row.resource == CONFIG_OTAU and row.direction == "in":
            offered = offered_from_row(row)
            self._offer(d, offered)
            entry.message = manifest_line(offered)
            d.last_seen = max(d.last_seen or 0.0, row.time)
        elif row.resource == OTAU_IN and row.direction == "out":
            if row.status is not None and row.version is not None:
                sent = row.delivered_at is not None
                self._status(d, row.version, row.status, entry.message, row.time, sent=sent)
            if row.delivered_at is not None:
                d.last_seen = max(d.last_seen or 0.0, row.delivered_at)
            elif outbox_id is not None:
                self._outbox[outbox_id] = entry
        self._add_history(d, entry)


def _kind_of_class(event: object) -> str:
    """The kind for an event class known by name only (before the engine defines its kind)."""
    return {"LinkChanged": "link", "AwaitingApply": "awaiting_apply"}.get(type(event).__name__, "")
