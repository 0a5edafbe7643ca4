"""The durable store: history, the outbox of unconfirmed reports, transfer, cache, session state.

One SQLite file in WAL mode (stdlib ``sqlite3`` only). One writer, the engine on its event-loop
thread (:class:`Store`, every write one short ``BEGIN IMMEDIATE ... COMMIT``), and any number of
readers (TUI, ``otatui history``/``status``) on their own connections in other threads or
processes (:meth:`Store.open_readonly`), with a busy timeout. The schema is versioned with
``PRAGMA user_version`` and migrated step by step on :meth:`Store.open`.

Durability: ``synchronous=NORMAL`` by default. In WAL mode a COMMIT returns only after the
transaction's frames, commit marker included, were handed to the kernel with ``write()`` on the
``-wal`` file. They are then in the page cache, which the death of the process (SIGKILL, crash,
OOM kill) cannot take back, and the next open replays them. So no committed row is lost when the
*process* dies. Only an OS crash or power loss can drop the last commits not yet fsynced (the
file stays consistent even then); ``Store.open(path, synchronous="FULL")`` fsyncs the WAL at
every commit to cover that too, at the price of one fsync per write.

The store has no place for secrets: it keeps OTAU values (``config_otau``, ``otau_in``) and the
bookkeeping around them, never device tokens.
"""

from otatui.store.reader import StoreReader
from otatui.store.rows import (
    DIRECTIONS,
    CacheEntry,
    Direction,
    Enqueued,
    FetchedManifest,
    HistoryRow,
    OutboxItem,
    PendingReport,
    SessionState,
    StoreError,
    TransferState,
)
from otatui.store.schema import SCHEMA_VERSION, Synchronous
from otatui.store.writer import Store

__all__ = [
    "DIRECTIONS",
    "SCHEMA_VERSION",
    "CacheEntry",
    "Direction",
    "Enqueued",
    "FetchedManifest",
    "HistoryRow",
    "OutboxItem",
    "PendingReport",
    "SessionState",
    "Store",
    "StoreError",
    "StoreReader",
    "Synchronous",
    "TransferState",
]
