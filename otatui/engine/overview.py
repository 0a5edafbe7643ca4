"""`otatui status`: one line per configured device, from the configuration and the store only.

Nothing here touches the network: the store is opened read-only (`StoreReader.open_readonly`), so
the overview can be taken while `otatui run` is writing the same file. For each device:

- **installed**: the version in the saved session snapshot (what the engine believes now), else,
  for a monitor, the last ``INSTALLED_VERSION`` it saw the device report, else the configuration's
  ``installed_version``;
- **offered**: the latest manifest received (``config_otau`` history row): version and name;
- **last status**: the latest ``otau_in`` report: status, version, message, and whether the
  connector has confirmed it ("not yet sent" while it waits in the outbox);
- **outbox**: how many reports wait for delivery;
- **last contact**: the latest moment the connector answered for this device (a value received
  from it, or a confirmed write).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from otatui.config import Config, DeviceConfig
from otatui.otau.manifest import Manifest, parse_manifest
from otatui.otau.snapshot import MachineSnapshot, Phase
from otatui.otau.status import Status, StatusReport
from otatui.store import HistoryRow, StoreReader

CONFIG_OTAU = "config_otau"
OTAU_IN = "otau_in"
RECENT_ROWS = 50
"""How many of a device's newest history rows are read to find its last contact."""


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """What `otatui status` shows for one device (also its `--json` object)."""

    name: str
    role: str
    protocol: str
    link: str | None
    installed_version: str | None
    phase: str | None
    """What the engine was doing when it last saved the session (``idle``, ``downloading``...)."""
    offered_version: str | None
    offered_name: str | None
    last_status: str | None
    last_status_version: str | None
    last_status_message: str | None
    last_status_sent: bool | None
    pending: int
    last_contact: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def device_statuses(config: Config, store: StoreReader | None) -> list[DeviceStatus]:
    """The status of every configured device, in configuration order (no store: config only)."""
    return [_status(device, store) for device in config.devices]


def _status(device: DeviceConfig, store: StoreReader | None) -> DeviceStatus:
    link = str(device.link) if device.link is not None else None
    installed = device.installed_version
    phase: str | None = None
    offered: HistoryRow | None = None
    last: HistoryRow | None = None
    pending = 0
    contact: float | None = None
    if store is not None:
        snapshot = _snapshot(store, device.name)
        if snapshot is not None:
            installed, phase = snapshot.installed_version, snapshot.phase.value
        elif device.role == "monitor":
            installed = _observed_installed(store, device.name) or installed
        offered = _latest(store, device.name, CONFIG_OTAU, "in")
        last = _latest(store, device.name, OTAU_IN, "out")
        pending = store.count_pending(device.name)
        contact = _last_contact(store.history(device=device.name, limit=RECENT_ROWS))
    offered_version = offered_name = None
    if offered is not None:
        offered_version = offered.version
        parsed = parse_manifest(offered.value)
        offered_name = parsed.name if isinstance(parsed, Manifest) else None
    report = _report(last)
    return DeviceStatus(
        name=device.name,
        role=device.role,
        protocol=device.protocol,
        link=link,
        installed_version=installed,
        phase=phase,
        offered_version=offered_version,
        offered_name=offered_name,
        last_status=report.status.value if report else (last.status if last else None),
        last_status_version=report.version if report else (last.version if last else None),
        last_status_message=report.message if report else (last.note if last else None),
        last_status_sent=None if last is None else last.delivered_at is not None,
        pending=pending,
        last_contact=contact,
    )


def _snapshot(store: StoreReader, name: str) -> MachineSnapshot | None:
    saved = store.get_session(name)
    if saved is None:
        return None
    try:
        return MachineSnapshot.from_data(json.loads(saved.snapshot))
    except ValueError:  # includes JSONDecodeError: an unreadable snapshot shows the config
        return None


def _latest(store: StoreReader, name: str, resource: str, direction: str) -> HistoryRow | None:
    """The newest row of `resource` in `direction` (a short read first, the full one if needed)."""
    recent = store.history(device=name, resource=resource, limit=RECENT_ROWS)
    for row in recent:
        if row.direction == direction:
            return row
    if len(recent) < RECENT_ROWS:
        return None
    found = None
    for row in store.iter_history(device=name, resource=resource):
        if row.direction == direction:
            found = row
    return found


def _observed_installed(store: StoreReader, name: str) -> str | None:
    found = None
    for row in store.iter_history(device=name, resource=OTAU_IN):
        if row.status == Status.INSTALLED_VERSION.value:
            found = row.version
    return found


def _report(row: HistoryRow | None) -> StatusReport | None:
    if row is None:
        return None
    try:
        return StatusReport.from_json(row.value)
    except ValueError:
        return None


def _last_contact(rows: Iterable[HistoryRow]) -> float | None:
    """The latest time the connector answered: a value received from it or a confirmed write."""
    times = [r.delivered_at for r in rows if r.delivered_at is not None]
    times += [r.time for r in rows if r.direction == "in"]
    return max(times, default=None)


# -- formatting ---------------------------------------------------------------------------------

_HEADERS = ("DEVICE", "ROLE", "LINK", "INSTALLED", "OFFERED", "LAST STATUS", "OUTBOX", "CONTACT")


def format_time(when: float | None) -> str:
    """Local time to the second, or ``-``."""
    if when is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


def status_cells(status: DeviceStatus) -> tuple[str, ...]:
    link = status.protocol if status.link is None else f"{status.protocol}+{status.link}"
    installed = status.installed_version or "?"
    if status.phase not in (None, Phase.IDLE.value):
        installed += f" ({status.phase})"
    offered = "-"
    if status.offered_version is not None:
        offered = status.offered_version
        if status.offered_name:
            offered += f' "{status.offered_name}"'
    elif status.offered_name:
        offered = f'"{status.offered_name}"'
    last = "-"
    if status.last_status is not None:
        last = f"{status.last_status} {status.last_status_version or '?'}"
        if status.last_status_message:
            last += f": {_one_line(status.last_status_message, 60)}"
        if not status.last_status_sent:
            last += " (not yet sent)"
    return (
        status.name,
        status.role,
        link,
        installed,
        offered,
        last,
        str(status.pending),
        format_time(status.last_contact),
    )


def status_table(statuses: Iterable[DeviceStatus]) -> list[str]:
    """The text lines of `otatui status`: a header and one aligned line per device."""
    return align([_HEADERS, *(status_cells(s) for s in statuses)])


def status_json(statuses: Iterable[DeviceStatus]) -> str:
    return json.dumps([s.to_dict() for s in statuses], ensure_ascii=False, indent=2)


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters (escape sequences too) shown escaped."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def align(rows: list[tuple[str, ...]]) -> list[str]:
    """Columns padded to their widest cell (the last column is not padded); cells made
    printable."""
    if not rows:
        return []
    rows = [tuple(printable(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
