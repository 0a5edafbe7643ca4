"""Rows of the durable store, as plain typed records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["in", "out", "local"]
"""``in``: cloud to device; ``out``: device to cloud; ``local``: happened on this machine only."""

DIRECTIONS: tuple[Direction, ...] = ("in", "out", "local")


class StoreError(Exception):
    """A store operation failed; ``str()`` is one human line naming the file."""


@dataclass(frozen=True, slots=True)
class HistoryRow:
    id: int
    time: float
    """When it happened (unix seconds): for a report, when it was produced."""
    device: str
    direction: Direction
    resource: str
    value: str
    """The raw text, exactly as sent or received."""
    version: str | None
    status: str | None
    source: str
    """Label of the path it took: ``mqtt``, ``http``, ``serial``, ``lan``, ``local``..."""
    note: str | None
    delivered_at: float | None
    """When the connector confirmed it (``None``: not confirmed, or not something to deliver)."""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    """Defines the order of delivery."""
    device: str
    resource: str
    value: str
    produced_at: float
    history_id: int
    attempts: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Enqueued:
    outbox_id: int
    history_id: int


@dataclass(frozen=True, slots=True)
class PendingReport:
    """A device->cloud value to record in the history and the outbox (``Store.record_step``)."""

    resource: str
    value: str
    source: str
    version: str | None = None
    status: str | None = None
    note: str | None = None
    produced_at: float | None = None
    """When it was produced (default: the step's time)."""


@dataclass(frozen=True, slots=True)
class TransferState:
    key: str
    """Identifies the source, e.g. the URL, or connector + content id."""
    partial_path: str
    bytes_done: int
    total: int | None
    validator: str | None
    """ETag or Last-Modified of the partial bytes, to make a resumed request conditional."""
    sha256: str | None
    """The expected digest, when pinned."""
    updated_at: float


@dataclass(frozen=True, slots=True)
class CacheEntry:
    key: str
    sha256: str
    size: int
    path: str
    fetched_at: float


@dataclass(frozen=True, slots=True)
class SessionState:
    device: str
    snapshot: str
    """JSON text of the update state machine's snapshot."""
    updated_at: float


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    """The manifest ``otatui fetch`` read for a device while online (store-and-forward)."""

    device: str
    raw: str
    """The exact ``config_otau`` text read."""
    version: str | None
    files: tuple[str | None, ...]
    """sha256 of each payload file fetch verified, in manifest order (None: not fetched)."""
    fetched_at: float
    used_at: float | None
    """When a session started working from it because the connector was unreachable."""
    ack_history_id: int | None
    """The history row of the acknowledgement queued then (it waits in the outbox)."""
    settled_at: float | None
    """When the cloud delivered the same text afterwards and it was acknowledged only."""

    @property
    def pending_settlement(self) -> bool:
        """Worked offline and not yet seen again from the cloud."""
        return self.used_at is not None and self.settled_at is None
