"""The records the TUI shows: one device, one history entry, one file transfer (the manifests
are in `otatui.tui.offers`, re-exported here).

Plain dataclasses (no Textual), filled by `otatui.tui.state.FleetState` from engine events and
store rows. `DeviceView.category` and `DeviceView.why` are what the fleet table and the device
screen show to answer "what state is it in?" and "why hasn't it started?".
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from otatui.config import DeviceConfig
from otatui.otau.status import Status
from otatui.tui.offers import (
    ManifestIdentity,
    ManifestVersion,
    ManifestView,
    OfferedManifest,
    manifest_identity,
)

__all__ = [
    "NOT_SENT",
    "SEEN",
    "SENT",
    "Category",
    "DeviceInfo",
    "DeviceView",
    "FileTransfer",
    "HistoryEntry",
    "ManifestIdentity",
    "ManifestVersion",
    "ManifestView",
    "OfferedManifest",
    "OutputLine",
    "manifest_identity",
]

OUTPUT_LINES = 200
"""Install output lines kept per device."""
TIMELINE_ENTRIES = 200
"""Status timeline entries kept per device."""

SENT = "sent"
NOT_SENT = "not yet sent"
SEEN = "seen"
"""A report a monitor read from the cloud: otatui did not send it (and, sampled, saw only the
latest value at each read)."""


class Category(StrEnum):
    """The one-word answer to "how is this device doing?" (fleet filter and colour)."""

    ATTENTION = "needs attention"
    UPDATING = "updating"
    UP_TO_DATE = "up to date"
    OFFLINE = "offline"

    @property
    def marker(self) -> str:
        """A text marker, so the state reads without colour (monochrome, 16 colours)."""
        return _MARKERS[self]

    @property
    def style_class(self) -> str:
        """The CSS-ish class name of the state (``attention``, ``updating``...)."""
        return _CLASSES[self]


_MARKERS = {
    Category.ATTENTION: "!!",
    Category.UPDATING: ">>",
    Category.UP_TO_DATE: "ok",
    Category.OFFLINE: "--",
}
_CLASSES = {
    Category.ATTENTION: "attention",
    Category.UPDATING: "updating",
    Category.UP_TO_DATE: "uptodate",
    Category.OFFLINE: "offline",
}


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What the configuration says about a device (never its credentials)."""

    name: str
    identity: str
    role: str  # agent | bridge | monitor
    protocol: str  # mqtt | http
    link: str | None = None  # bridge: "lan" or "serial:/dev/...?baud=..."
    installed_version: str | None = None
    apply: str = "auto"  # "auto" | "confirm" (the update waits for the technician's apply)

    @classmethod
    def from_config(cls, device: DeviceConfig) -> DeviceInfo:
        return cls(
            name=device.name,
            identity=device.identity,
            role=device.role,
            protocol=device.protocol,
            link=None if device.link is None else str(device.link),
            installed_version=device.installed_version,
            apply=device.apply,
        )

    @property
    def link_kind(self) -> str:
        """``lan``, ``serial`` or ``""``."""
        if self.link is None:
            return ""
        return self.link.split(":", 1)[0]

    @property
    def route(self) -> str:
        """Protocol and link in one short cell: ``mqtt``, ``http+serial``..."""
        return self.protocol if not self.link_kind else f"{self.protocol}+{self.link_kind}"


@dataclass(slots=True)
class HistoryEntry:
    """One row of the history: a value in or out (``otau_in``/``config_otau``) or a local event."""

    time: float
    device: str
    direction: str  # "in" (cloud to device) | "out" (device to cloud) | "local"
    resource: str  # "otau_in" | "config_otau" | "error"
    version: str | None = None
    status: str | None = None
    message: str = ""
    source: str = ""
    cloud: str = ""  # SENT | NOT_SENT for what goes to the cloud, SEEN when read from it
    note: str = ""
    row_id: int | None = None  # the store's history id, when known
    outbox_id: int | None = None  # while waiting in the outbox

    @property
    def sent(self) -> bool | None:
        """True/False for what goes to the cloud, None for everything else (a report a monitor
        saw was not sent by otatui)."""
        if not self.cloud or self.cloud == SEEN:
            return None
        return self.cloud == SENT


@dataclass(slots=True)
class FileTransfer:
    """One payload file moving: a download into the cache or a push over a link."""

    device: str
    file: str
    direction: str  # "download" | "push"
    index: int = 0
    count: int = 1
    done: int = 0
    total: int | None = None
    rate: float = 0.0
    started: float = 0.0
    updated: float = 0.0
    finished: bool = False
    ok: bool | None = None  # None while running, or when it stopped without a result
    message: str = ""
    from_cache: bool = False
    size: int = 0
    sha256: str = ""
    resumed: int = 0
    """Times the file continued (HTTP Range) after a cut."""
    resumed_at: int | None = None
    """The byte offset of the last resume."""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.device, self.direction, self.file)

    @property
    def fraction(self) -> float | None:
        """0..1, or None when the size is unknown."""
        if self.finished and self.ok:
            return 1.0
        if not self.total:
            return None
        return min(1.0, self.done / self.total)

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate, or None when it cannot be told."""
        if self.finished or not self.total or self.rate <= 0:
            return None
        return max(0.0, (self.total - self.done) / self.rate)

    @property
    def outcome(self) -> str:
        """``running``, ``done``, ``cached``, ``failed`` or ``stopped``."""
        if not self.finished:
            return "running"
        if self.ok is None:
            return "stopped"
        if not self.ok:
            return "failed"
        return "cached" if self.from_cache else "done"


@dataclass(slots=True)
class OutputLine:
    time: float
    line: str
    stream: str = "stdout"


@dataclass(slots=True)
class DeviceView:
    """Everything the TUI knows about one device, kept up to date by `FleetState`."""

    info: DeviceInfo
    installed_version: str | None = None
    # the channel to the connector ("why hasn't it started?")
    connection: str = "unknown"  # LinkState value, or "unknown" before the first report
    connection_reason: str = ""
    retry_at: float | None = None
    attempt: int = 0
    # the link to a bridged device (serial / LAN)
    link_state: str = ""
    link_detail: str = ""
    # the update
    offered: OfferedManifest | None = None
    phase: str = "idle"
    phase_version: str | None = None
    last_status: str | None = None
    last_status_version: str | None = None
    last_message: str = ""
    last_status_time: float | None = None
    last_status_sent: bool | None = None
    awaiting_apply: str | None = None  # the version waiting for the technician's apply
    error: str = ""
    error_time: float | None = None
    last_seen: float | None = None
    transfers: dict[tuple[str, str], FileTransfer] = field(default_factory=dict)
    output: deque[OutputLine] = field(default_factory=lambda: deque(maxlen=OUTPUT_LINES))
    timeline: deque[HistoryEntry] = field(default_factory=lambda: deque(maxlen=TIMELINE_ENTRIES))
    revision: int = 0  # FleetState.version at this device's last change

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def status(self) -> Status | None:
        if self.last_status is None or self.last_status not in Status.__members__:
            return None
        return Status(self.last_status)

    @property
    def active_transfers(self) -> list[FileTransfer]:
        return [t for t in self.transfers.values() if not t.finished]

    @property
    def progress(self) -> float | None:
        """0..1 over the files of the running transfer, or None when nothing moves."""
        active = self.active_transfers
        if not active:
            return None
        t = active[0]
        frac = t.fraction or 0.0
        return min(1.0, (t.index + frac) / max(1, t.count))

    @property
    def offline(self) -> bool:
        """Cannot reach the connector now (retrying, stopped or refused)."""
        return self.connection in ("backoff", "stopped", "auth_failed")

    @property
    def failed(self) -> bool:
        """The last report was an error for the version still offered (a human should look)."""
        status = self.status
        if status is None or not status.is_error or status is Status.INSTALL_ABORTED:
            return False
        offered = self.offered.version if self.offered else None
        return offered is None or offered == self.last_status_version

    @property
    def cancelled(self) -> bool:
        """The offered version's last report is INSTALL_ABORTED (cancelled: nothing runs until
        someone retries it or a new manifest comes)."""
        if self.status is not Status.INSTALL_ABORTED:
            return False
        offered = self.offered.version if self.offered else None
        return offered is None or offered == self.last_status_version

    @property
    def updating(self) -> bool:
        if self.phase not in ("idle", ""):
            return True
        if self.active_transfers:
            return True
        status = self.status
        # a monitor only sees reports: a non-final status means the device is mid-update
        return self.info.role == "monitor" and status is not None and not status.is_final

    @property
    def category(self) -> Category:
        if (
            self.awaiting_apply is not None
            or self.connection in ("auth_failed", "stopped")
            or self.failed
            or self.cancelled
            or (self.offered is not None and not self.offered.valid)
            or (self.error and self.connection == "unknown")
        ):
            return Category.ATTENTION
        if self.updating:
            return Category.UPDATING
        if self.connection != "connected":
            # not reachable yet or now (unknown, connecting, backoff): nothing proves it is
            # up to date
            return Category.OFFLINE
        return Category.UP_TO_DATE

    def _push_progress(self) -> float | None:
        """0..1 over the files pushed over the link now, or None when none moves."""
        pushes = [t for t in self.active_transfers if t.direction == "push"]
        if not pushes:
            return None
        t = pushes[0]
        return min(1.0, (t.index + (t.fraction or 0.0)) / max(1, t.count))

    def _link_work(self) -> str:
        """What the bridged device is doing while its link transfers or installs."""
        version = self.phase_version or (self.offered.version if self.offered else None) or ""
        what = f"{version} " if version else "the update "
        if self.link_state == "installing":
            return f"the device installs {what.rstrip()}"
        done = self._push_progress()
        pct = "" if done is None else f": {round(done * 100)}%"
        if self.info.link_kind == "lan":
            return f"the device downloads {what}from the local connector (LAN){pct}"
        how = " (YMODEM)" if "YMODEM" in self.link_detail else ""
        return f"pushing {what}to the device over {self.info.link_kind or 'the link'}{pct}{how}"

    def why(self, now: float, *, retry_key: str = "r") -> str:
        """One plain line: what the device is doing, or why it has not started (`retry_key`:
        the key that retries, as remapped)."""
        if self.awaiting_apply is not None:
            return f"{self.awaiting_apply} is ready: waiting for you to apply it"
        if self.connection == "auth_failed":
            reason = self.connection_reason
            if "refused" in reason:  # it says so already ("... refused the device token ...")
                return f"{reason}; no retry"
            return f"the connector refused the credentials: {reason or 'no retry'}"
        if self.connection == "backoff":
            wait = "soon" if self.retry_at is None else f"in {max(0, round(self.retry_at - now))} s"
            why = f": {self.connection_reason}" if self.connection_reason else ""
            return f"cannot reach the connector{why}; retry {wait} (attempt {self.attempt})"
        if self.connection == "stopped":
            return f"stopped: {self.connection_reason or self.error or 'not running'}"
        if self.connection in ("unknown", "connecting"):
            return "connecting to the connector"
        if self.link_state in ("opening", "waiting", "lost"):
            detail = f": {self.link_detail}" if self.link_detail else ""
            return f"link {self.link_state}{detail}"
        if self.link_state in ("transferring", "installing"):
            return self._link_work()
        if self.phase not in ("idle", ""):
            return f"{self.phase} {self.phase_version or ''}".rstrip()
        if self.offered is not None and not self.offered.valid:
            why = f"the offered manifest is not valid: {self.offered.reason}"
            if self.status is not None and self.status.is_error and self.info.role != "monitor":
                why += "; retry cannot help: it needs a new offer from the cloud"
            return why
        if self.cancelled:
            again = "" if self.info.role == "monitor" else f": {retry_key} retries it"
            version = self.last_status_version or "the update"
            return f"{version} was cancelled ({Status.INSTALL_ABORTED.value}){again}"
        if self.failed:
            said = f": {self.last_message}" if self.last_message else ""
            return f"{self.last_status} for {self.last_status_version}{said}; retry when fixed"
        if self.info.role == "monitor":
            return "watching its config_otau and otau_in (a monitor changes nothing)"
        if self.offered is None:
            return "connected; no manifest offered"
        return "connected; waiting for a new manifest"
