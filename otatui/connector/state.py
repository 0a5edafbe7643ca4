"""The connector's model of devices and their resources (in memory, optionally kept on disk).

A device has an identity, a token once provisioned, and resources (aliases). Each resource holds its
application-set value (Murano's "set") and the device's last write ("reported"), and whether the
device acknowledged the set value by writing the identical value back after it was set (the
resource is then "in sync").
Every device write is also appended to the device's report history with its timestamp (the record
or batch timestamp when the device gave one, else the server receive time), so tests can assert
that each report arrived once, in order, with its original time.

Delivery rule shared by the HTTP long poll and the MQTT push (murano-device-api.md §2.1, §7):
an app-set value is delivered while it is unacknowledged; an acknowledged value is delivered again
only to a poll whose ``If-Modified-Since`` is positive and older than the value's set time
(in whole seconds, the resolution of ``Last-Modified``). ``If-Modified-Since: 0`` or no header
never re-delivers an acknowledged value.

Waiters (long polls) wake through a per-device :class:`asyncio.Event` that is replaced on every
change; MQTT sessions register a push callback per identity.

Presence (for the LAN bridge, which waits for an offline device to come to the local connector)
is kept in :class:`~otatui.connector.presence.Presence` (``state.presence``): authentications,
activations and MQTT sessions (the ``pushing`` block) feed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import string
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .presence import Presence

PushCallback = Callable[["Resource"], None]

TOKEN_LENGTH = 40
_TOKEN_ALPHABET = string.ascii_letters + string.digits
_STATE_FILE = "devices.json"
_REPORTS_FILE = "reports.jsonl"
_SAVE_DELAY_S = 0.5


class ProvisioningError(Exception):
    """Activation refused; ``status`` is the HTTP status Murano answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def new_token() -> str:
    """A fresh 40-character alphanumeric device token."""
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))


@dataclass
class Resource:
    """One alias of one device: the application's value ("set") and the device's ("reported").

    The set value is pending until the device writes it back byte for byte (``acked``).
    """

    alias: str
    set_value: str | None = None
    set_at: float = 0.0
    acked: bool = False
    acked_at: float | None = None
    reported: str | None = None
    reported_at: float = 0.0

    @property
    def value(self) -> str:
        """What a read returns: the application's value if there is one, else the device's."""
        if self.set_value is not None:
            return self.set_value
        return self.reported or ""

    def deliverable(self, since: float | None) -> bool:
        """Whether a poll with this ``If-Modified-Since`` (None = absent) gets the value now."""
        if self.set_value is None:
            return False
        if not self.acked:
            return True
        return since is not None and since > 0 and int(self.set_at) > since


@dataclass(frozen=True)
class Report:
    """One value written by a device, as received."""

    identity: str
    alias: str
    value: str
    timestamp: float  # device-given (record / batch) or server receive time, Unix seconds
    received_at: float  # server receive time
    via: str  # "http", "http-record", "mqtt", "mqtt-batch"
    ack: bool  # it was the identical echo of a pending app-set value


@dataclass
class Device:
    identity: str
    token: str | None = field(default=None, repr=False)
    resources: dict[str, Resource] = field(default_factory=dict)
    reports: list[Report] = field(default_factory=list, repr=False)

    @property
    def provisioned(self) -> bool:
        return self.token is not None


class ConnectorState:
    """Devices, tokens, resources and reports, with change notification."""

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        allow_any_identity: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.data_dir = data_dir
        self.allow_any_identity = allow_any_identity
        self.clock = clock
        self._devices: dict[str, Device] = {}
        self._by_token: dict[str, Device] = {}
        self._events: dict[str, asyncio.Event] = {}
        self._push: dict[str, list[PushCallback]] = {}
        self.presence = Presence(clock)
        self._save_handle: asyncio.TimerHandle | None = None
        self._loading = False
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
            self._loading = True
            try:
                self._load()
            finally:
                self._loading = False

    # ----- devices and provisioning -------------------------------------------------------------

    def add_device(self, identity: str, token: str | None = None) -> Device:
        """Whitelist ``identity``; with a token it is already provisioned with that token."""
        if not identity:
            raise ValueError("a device identity must not be empty")
        device = self._devices.get(identity)
        if device is None:
            device = Device(identity)
            self._devices[identity] = device
        if token is not None:
            self._set_token(device, token)
        self._changed_persistent()
        return device

    def remove_device(self, identity: str) -> None:
        """Forget the device; its waiters wake (a long poll then answers 401)."""
        device = self._devices.pop(identity, None)
        if device is not None:
            if device.token is not None:
                self._by_token.pop(device.token, None)
            self._notify(device)
            self.presence.changed(identity)
        self._changed_persistent()

    def reset_device(self, identity: str) -> None:
        """Forget the token: the identity may activate again (Murano's "reset")."""
        device = self.device(identity)
        if device.token is not None:
            self._by_token.pop(device.token, None)
            device.token = None
            self._notify(device)
        self._changed_persistent()

    def activate(self, identity: str) -> str:
        """Provision ``identity`` and return its new token (§1.3 semantics)."""
        device = self._devices.get(identity)
        if device is None:
            if not self.allow_any_identity or not identity:
                raise ProvisioningError(404, f"identity {identity!r} is not whitelisted")
            device = Device(identity)
            self._devices[identity] = device
        if device.provisioned:
            raise ProvisioningError(409, f"identity {identity!r} is already provisioned")
        self._set_token(device, new_token())
        self._changed_persistent()
        self.presence.seen(identity)
        assert device.token is not None
        return device.token

    def authenticate(self, token: str | None) -> Device | None:
        if not token:
            return None
        device = self._by_token.get(token)
        if device is not None:
            self.presence.seen(device.identity)
        return device

    def device(self, identity: str) -> Device:
        try:
            return self._devices[identity]
        except KeyError:
            raise KeyError(f"unknown device {identity!r}") from None

    def devices(self) -> list[Device]:
        return list(self._devices.values())

    def _set_token(self, device: Device, token: str) -> None:
        other = self._by_token.get(token)
        if other is not None and other is not device:
            raise ValueError(f"that token already belongs to device {other.identity!r}")
        if device.token is not None:
            self._by_token.pop(device.token, None)
        device.token = token
        self._by_token[token] = device

    # ----- application side ---------------------------------------------------------------------

    def set_value(self, identity: str, alias: str, value: str) -> Resource:
        """The application sets a resource (e.g. ``config_otau``): pending until acknowledged."""
        device = self.device(identity)
        resource = device.resources.get(alias)
        if resource is None:
            resource = device.resources[alias] = Resource(alias)
        resource.set_value, resource.set_at = value, self.clock()
        resource.acked, resource.acked_at = False, None
        self._notify(device)
        for callback in list(self._push.get(identity, ())):
            callback(resource)
        self._changed_persistent()
        return resource

    def reports(self, identity: str, alias: str | None = None) -> list[Report]:
        device = self.device(identity)
        return [r for r in device.reports if alias is None or r.alias == alias]

    # ----- device side --------------------------------------------------------------------------

    def device_write(
        self,
        device: Device,
        values: Iterable[tuple[str, str]],
        *,
        via: str,
        timestamp: float | None = None,
    ) -> None:
        """Values written by the device at ``timestamp`` (default: now)."""
        now = self.clock()
        for alias, value in values:
            self._record_one(
                device, alias, value, now if timestamp is None else timestamp, now, via
            )
        self._notify(device)
        self._changed_persistent()

    def device_record(
        self, device: Device, points: Iterable[tuple[str, float, str]], *, via: str
    ) -> None:
        """Timestamped points (alias, Unix seconds, value), e.g. a backlog."""
        now = self.clock()
        for alias, ts, value in points:
            self._record_one(device, alias, value, ts, now, via)
        self._notify(device)
        self._changed_persistent()

    def _record_one(
        self, device: Device, alias: str, value: str, ts: float, now: float, via: str
    ) -> None:
        resource = device.resources.get(alias)
        if resource is None:
            resource = device.resources[alias] = Resource(alias)
        ack = resource.set_value is not None and resource.set_value == value
        if ack and not resource.acked:
            resource.acked, resource.acked_at = True, now
        if resource.reported is None or ts >= resource.reported_at:
            resource.reported, resource.reported_at = value, ts
        report = Report(device.identity, alias, value, ts, now, via, ack)
        device.reports.append(report)
        self._append_report(report)

    # ----- waiting and pushing ------------------------------------------------------------------

    def pending(
        self, device: Device, aliases: Iterable[str], since: float | None
    ) -> list[Resource]:
        """Resources among ``aliases`` a poll with ``If-Modified-Since`` ``since`` gets now."""
        found = []
        for alias in aliases:
            resource = device.resources.get(alias)
            if resource is not None and resource.deliverable(since):
                found.append(resource)
        return found

    def unacknowledged(self, device: Device) -> list[Resource]:
        found = [r for r in device.resources.values() if r.set_value is not None and not r.acked]
        return sorted(found, key=lambda r: r.set_at)

    def change_event(self, device: Device) -> asyncio.Event:
        """An event set at the next change of ``device`` (take it before checking, then wait)."""
        event = self._events.get(device.identity)
        if event is None:
            event = self._events[device.identity] = asyncio.Event()
        return event

    def _notify(self, device: Device) -> None:
        event = self._events.pop(device.identity, None)
        if event is not None:
            event.set()

    @contextlib.contextmanager
    def pushing(self, identity: str, callback: PushCallback) -> Iterator[None]:
        """Call ``callback`` with every app-set value of ``identity`` while in the block.

        An MQTT session holds this for as long as it is connected: it is the device's presence.
        """
        self._push.setdefault(identity, []).append(callback)
        self.presence.session_opened(identity)
        try:
            yield
        finally:
            callbacks = self._push.get(identity, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if not callbacks:
                self._push.pop(identity, None)
            self.presence.session_closed(identity)

    # ----- persistence --------------------------------------------------------------------------

    def _changed_persistent(self) -> None:
        if self.data_dir is None or self._loading or self._save_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.save()
            return
        self._save_handle = loop.call_later(_SAVE_DELAY_S, self.save)

    def save(self) -> None:
        """Write devices, tokens and resources to the data dir now (atomic replace, mode 0600)."""
        if self._save_handle is not None:
            self._save_handle.cancel()
            self._save_handle = None
        if self.data_dir is None:
            return
        doc = {
            "devices": [
                {
                    "identity": d.identity,
                    "token": d.token,
                    "resources": [asdict(r) for r in d.resources.values()],
                }
                for d in self._devices.values()
            ]
        }
        path = self.data_dir / _STATE_FILE
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f)
        tmp.replace(path)

    def _append_report(self, report: Report) -> None:
        if self.data_dir is None:
            return
        with (self.data_dir / _REPORTS_FILE).open("a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(report)) + "\n")

    def _load(self) -> None:
        assert self.data_dir is not None
        path = self.data_dir / _STATE_FILE
        if path.exists():
            doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            for entry in doc.get("devices", []):
                device = self.add_device(entry["identity"], entry.get("token"))
                for r in entry.get("resources", []):
                    device.resources[r["alias"]] = Resource(**r)
        reports = self.data_dir / _REPORTS_FILE
        if reports.exists():
            with reports.open(encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        report = Report(**json.loads(line))
                        owner = self._devices.get(report.identity)
                        if owner is not None:
                            owner.reports.append(report)
