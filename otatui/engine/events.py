"""Typed events the engine publishes, and the bus that carries them to subscribers.

Every event names its device and the time it happened. Subscribers (the TUI, the JSON-lines
printer, tests) each get their own queue; a slow subscriber never blocks the engine. Progress
events carry a `coalesce_key`: a subscriber that falls behind keeps only the latest event per key
(`EventQueue`), so a flood of progress never queues up and the latest value is never lost.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from otatui.murano.channel import ChannelState
from otatui.otau.manifest import Manifest, ManifestError


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of all engine events."""

    kind: ClassVar[str] = "event"
    device: str
    time: float = field(default_factory=time.time)

    @property
    def coalesce_key(self) -> Hashable | None:
        """Events with the same key may be replaced by the newest one (None: never)."""
        return None

    def to_dict(self) -> dict[str, Any]:
        """One JSON-ready dict: `time`, `device`, `event` and the event's own fields."""
        out: dict[str, Any] = {
            "time": round(self.time, 6),
            "device": self.device,
            "event": self.kind,
        }
        for f in dataclasses.fields(self):
            if f.name not in ("time", "device"):
                out[f.name] = getattr(self, f.name)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionChanged(Event):
    """The device's channel to the connector changed state ("why hasn't it started?")."""

    kind: ClassVar[str] = "connection"
    protocol: str
    state: str  # murano.channel.LinkState value
    reason: str = ""
    retry_at: float | None = None
    attempt: int = 0

    @classmethod
    def of(cls, device: str, protocol: str, state: ChannelState) -> ConnectionChanged:
        """The event for a channel's `on_state` report."""
        return cls(
            device=device,
            protocol=protocol,
            state=state.state.value,
            reason=state.reason,
            retry_at=state.retry_at,
            attempt=state.attempt,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestReceived(Event):
    """A `config_otau` value arrived (valid or not); `reason` is set when it is invalid."""

    kind: ClassVar[str] = "manifest"
    version: str | None
    name: str = ""
    type: str = ""
    description: str = ""
    items: tuple[str, ...] = ()  # payload items as written (pins included), or () for JSON
    valid: bool = True
    reason: str = ""
    source: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportQueued(Event):
    """An `otau_in` report was produced and stored in the outbox."""

    kind: ClassVar[str] = "report"
    outbox_id: int
    version: str
    status: str
    message: str = ""
    source: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportObserved(Event):
    """A monitor saw the device's `otau_in` change in the cloud (nothing is sent by otatui).

    `sampled`: the monitor reads `otau_in` every few seconds and sees the latest value at each
    read, not every report: reports the device wrote between two reads are not observed (show
    these as "seen", not as a complete record of what was sent).
    """

    kind: ClassVar[str] = "observed"
    version: str
    status: str
    message: str = ""
    source: str = ""
    sampled: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportsDelivered(Event):
    """The connector confirmed these outbox reports (PUBACK / 204)."""

    kind: ClassVar[str] = "delivered"
    outbox_ids: tuple[int, ...]
    batch: bool = False  # sent as a timestamped backlog


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseChanged(Event):
    """The device's update moved to another phase (idle, testing, downloading, installing)."""

    kind: ClassVar[str] = "phase"
    phase: str
    version: str | None = None
    installed_version: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferProgress(Event):
    """Bytes of one payload file (download or link push) so far.

    `resumed`: how many times this file's download continued with Range after a cut (a dropped
    connection, or an earlier run stopped mid-file) in this job; `resumed_at`: the byte offset
    the last of them continued from (None before any). A push reports 0 and None.
    """

    kind: ClassVar[str] = "progress"
    file: str
    index: int
    count: int
    done: int
    total: int | None
    rate: float  # bytes per second, smoothed
    direction: str = "download"  # "download" | "push"
    resumed: int = 0
    resumed_at: int | None = None

    @property
    def coalesce_key(self) -> Hashable | None:
        return ("progress", self.device, self.direction, self.file)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferFinished(Event):
    """One payload file is complete (or failed)."""

    kind: ClassVar[str] = "transfer"
    file: str
    ok: bool
    size: int = 0
    sha256: str = ""
    from_cache: bool = False
    message: str = ""
    direction: str = "download"


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallOutput(Event):
    """One line of the installer's (or the bridged device's) output."""

    kind: ClassVar[str] = "install_output"
    line: str
    stream: str = "stdout"


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkChanged(Event):
    """A bridge's local link to its device changed state (`otatui.links.link.LINK_STATES`)."""

    kind: ClassVar[str] = "link"
    link: str  # the link's source label: "serial", "lan", "local"
    state: str  # opening, waiting, connected, transferring, installing, closed, lost
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AwaitingApply(Event):
    """The update is downloaded and checked; it waits for the technician to apply it
    (`apply = "confirm"`): `Fleet.apply(device)` goes on, `Fleet.cancel(device)` aborts. The
    wait ends with the next `PhaseChanged` (installing, or idle after a cancel); after a restart
    the update resumes and this event comes again."""

    kind: ClassVar[str] = "awaiting_apply"
    version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionError(Event):
    """Something went wrong that the technician should see; the session keeps running."""

    kind: ClassVar[str] = "error"
    message: str


Subscriber = Callable[[Event], None]


class EventQueue:
    """A subscriber's queue that coalesces replaceable events while they wait.

    Non-replaceable events keep their order; a replaceable event that is still waiting is
    overwritten in place by a newer one with the same key, so the queue stays bounded by the
    number of distinct keys in flight plus the non-replaceable backlog.
    """

    def __init__(self) -> None:
        self._items: OrderedDict[Hashable, Event] = OrderedDict()
        self._seq = 0
        self._ready = asyncio.Event()

    def put(self, event: Event) -> None:
        key = event.coalesce_key
        if key is not None and key in self._items:
            self._items[key] = event  # keeps its place, newest value
        else:
            self._seq += 1
            self._items[key if key is not None else ("seq", self._seq)] = event
        self._ready.set()

    def drain(self) -> list[Event]:
        """Everything waiting, in order (without blocking)."""
        events = list(self._items.values())
        self._items.clear()
        self._ready.clear()
        return events

    async def get_batch(self) -> list[Event]:
        """Wait until something is waiting, then take all of it."""
        await self._ready.wait()
        return self.drain()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Event]:
        return iter(list(self._items.values()))


class EventBus:
    """Publishes engine events to any number of subscribers."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback` for every event (synchronously: keep it cheap). Returns unsubscribe."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def queue(self) -> tuple[EventQueue, Callable[[], None]]:
        """A coalescing queue fed with every event, and the function that unsubscribes it."""
        q = EventQueue()
        return q, self.subscribe(q.put)

    def publish(self, event: Event) -> None:
        for callback in tuple(self._subscribers):
            callback(event)


def manifest_event(device: str, parsed: Manifest | ManifestError, source: str) -> ManifestReceived:
    """The `manifest` event for a received `config_otau` value, valid or not."""
    if isinstance(parsed, ManifestError):
        return ManifestReceived(
            device=device, version=parsed.version, valid=False, reason=parsed.reason, source=source
        )
    return ManifestReceived(
        device=device,
        version=parsed.version,
        name=parsed.name,
        type=parsed.type.value,
        description=parsed.description,
        items=tuple(i.raw for i in parsed.items),
        source=source,
    )
