"""The one small protocol both device channels (MQTT and HTTP long poll) implement.

A channel is one device's connection to a Murano IoT Connector, seen from the device:

- `values()` yields the values the cloud sets on the device's resources (`config_otau` for the
  update flow), each with its raw text kept so that an acknowledgement can echo identical bytes.
- `write(alias, value)` writes one resource and returns only once the connector confirmed it
  (MQTT PUBACK, HTTP 204), so the outbox may delete the report afterwards.
- `acknowledge(value)` is the Murano acknowledgement: the identical text written back to the
  same resource.
- `write_batch(records)` writes timestamped values (the outbox backlog) with their original times
  (`$resource.batch` over MQTT, `POST /onep:v1/stack/record` over HTTP).
- Connection state changes are passed to the `on_state` callback given to the channel, with a
  reason and, while waiting to reconnect, the time of the next attempt: this is what answers
  "why hasn't it started?" on screen.

Errors: every failure is a `ChannelError` with a one-line message that never contains the token.
`AuthError` is final for the credentials in use: the channel stops and does not retry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable


class LinkState(StrEnum):
    """Where a channel's connection stands."""

    CONNECTING = "connecting"
    CONNECTED = "connected"  # MQTT session up / last HTTP request answered
    BACKOFF = "backoff"  # lost or refused; waiting until `retry_at` to try again
    AUTH_FAILED = "auth_failed"  # credentials refused: final, no retry
    STOPPED = "stopped"  # closed by us


@dataclass(frozen=True, slots=True)
class ChannelState:
    state: LinkState
    reason: str = ""
    retry_at: float | None = None  # unix time of the next attempt (BACKOFF only)
    attempt: int = 0  # consecutive failed attempts so far


StateCallback = Callable[[ChannelState], None]


@dataclass(frozen=True, slots=True)
class ResourceValue:
    """A value the cloud set on one of the device's resources, as received."""

    alias: str
    raw: str  # exact text of the value (the acknowledgement echoes it byte for byte)
    # unix seconds the connector gave it (µs topic suffix, or Last-Modified)
    timestamp: float | None = None
    source: str = ""  # "mqtt" | "http"


@dataclass(frozen=True, slots=True)
class TimedValue:
    """One timestamped write of the outbox backlog."""

    alias: str
    value: str
    timestamp: float  # unix seconds when the value was produced


class ChannelError(Exception):
    """A write or connection failed; the message is one line and holds no secret."""


class AuthError(ChannelError):
    """The connector refused the credentials (HTTP 401, CONNACK 4/5): final for this token."""


class NotConnected(ChannelError):
    """The channel has no live connection right now; try again after it reconnects."""


class RecordConflict(ChannelError):
    """`/onep:v1/stack/record` refused timestamps closer than 1 s for one alias (HTTP 409)."""

    def __init__(self, conflicts: dict[str, list[float]] | None = None) -> None:
        super().__init__("two values of one resource are less than 1 s apart")
        self.conflicts = conflicts or {}


@runtime_checkable
class Channel(Protocol):
    """One device's connection to the connector (see the module docstring)."""

    @property
    def protocol(self) -> str:
        """ "mqtt" or "http": the source label of what arrives through this channel."""
        ...

    @property
    def state(self) -> ChannelState: ...

    async def start(self) -> None:
        """Begin connecting (returns at once; progress is reported through `on_state`)."""
        ...

    async def close(self) -> None:
        """Stop for good; pending `values()` iterations end."""
        ...

    def values(self) -> AsyncIterator[ResourceValue]:
        """Values set by the cloud on the watched resources, in arrival order."""
        ...

    async def write(self, alias: str, value: str) -> None:
        """Write one value; returns once the connector confirmed it."""
        ...

    async def acknowledge(self, value: ResourceValue) -> None:
        """Echo `value.raw` to `value.alias`, byte for byte; returns once confirmed."""
        ...

    async def write_batch(self, records: Sequence[TimedValue]) -> None:
        """Write values with their original timestamps; returns once confirmed."""
        ...
