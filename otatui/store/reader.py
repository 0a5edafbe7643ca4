"""Read access to the store: history, outbox, transfer, cache and session state."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from otatui.store.rows import (
    CacheEntry,
    FetchedManifest,
    HistoryRow,
    OutboxItem,
    SessionState,
    StoreError,
    TransferState,
)
from otatui.store.schema import SCHEMA_VERSION, connect, user_version

_HISTORY_SELECT = (
    "SELECT id, time, device, direction, resource, value, version, status, source, note,"
    " delivered_at FROM history"
)
_OUTBOX_SELECT = (
    "SELECT id, device, resource, value, produced_at, history_id, attempts, last_error FROM outbox"
)


def _compose(select: str, clauses: list[str], tail: str) -> str:
    """``select`` + ``WHERE`` the clauses + ``tail``.

    Every piece is a constant of this module and every value is a bound parameter; the query is
    assembled (rather than one fixed ``(? IS NULL OR col = ?)`` text) so SQLite can use indexes.
    """
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return f"{select}{where} {tail}".rstrip()


def _history_filter(
    device: str | None, resource: str | None, since: float | None, after_id: int | None
) -> tuple[list[str], list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    for clause, value in (
        ("device = ?", device),
        ("resource = ?", resource),
        ("time >= ?", since),
        ("id > ?", after_id),
    ):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return clauses, params


class StoreReader:
    """Read access to a store file. Safe to share between threads (calls are serialised)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path
        self._lock = threading.RLock()
        self._closed = False

    @property
    def path(self) -> Path:
        return self._path

    @classmethod
    def open_readonly(cls, path: str | os.PathLike[str]) -> StoreReader:
        """Open an existing store for reading only (another process may be writing it)."""
        p = Path(path)
        if not p.is_file():
            raise StoreError(f"store {p}: no such file (run otatui once to create it)")
        conn = connect(p, readonly=True)
        try:
            version = user_version(conn)
            if version != SCHEMA_VERSION:
                raise StoreError(
                    f"store {p}: schema version {version}, this otatui reads {SCHEMA_VERSION}"
                    " (open it read-write with this version to migrate)"
                )
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"store {p}: cannot read: {exc}") from None
        except StoreError:
            conn.close()
            raise
        return StoreReader(conn, p)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _guard(self, action: str) -> Iterator[sqlite3.Connection]:
        """Serialise access and turn sqlite errors into one-line StoreErrors."""
        with self._lock:
            if self._closed:
                raise StoreError(f"store {self._path}: {action} after close")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise StoreError(f"store {self._path}: {action} failed: {exc}") from None

    def _select(self, action: str, sql: str, params: Sequence[object] = ()) -> list[Any]:
        with self._guard(action) as conn:
            return conn.execute(sql, params).fetchall()

    def _scalar_int(self, action: str, sql: str, params: Sequence[object] = ()) -> int:
        rows = self._select(action, sql, params)
        return int(rows[0][0])

    # -- history -------------------------------------------------------------------------------

    def history(
        self,
        *,
        device: str | None = None,
        resource: str | None = None,
        since: float | None = None,
        after_id: int | None = None,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> list[HistoryRow]:
        """History rows in insertion (id) order, filtered; ``since`` is on ``time``."""
        clauses, params = _history_filter(device, resource, since, after_id)
        tail = "ORDER BY id DESC" if newest_first else "ORDER BY id ASC"
        if limit is not None:
            tail += " LIMIT ?"
            params.append(max(0, limit))
        sql = _compose(_HISTORY_SELECT, clauses, tail)
        return [HistoryRow(*r) for r in self._select("read history", sql, params)]

    def get_history(self, history_id: int) -> HistoryRow | None:
        sql = _compose(_HISTORY_SELECT, ["id = ?"], "")
        rows = self._select("read history", sql, (history_id,))
        return HistoryRow(*rows[0]) if rows else None

    def count_history(
        self, *, device: str | None = None, resource: str | None = None, since: float | None = None
    ) -> int:
        clauses, params = _history_filter(device, resource, since, None)
        sql = _compose("SELECT count(*) FROM history", clauses, "")
        return self._scalar_int("count history", sql, params)

    def iter_history(
        self,
        *,
        device: str | None = None,
        resource: str | None = None,
        since: float | None = None,
        after_id: int | None = None,
        page: int = 500,
    ) -> Iterator[HistoryRow]:
        """All matching rows, oldest first, fetched ``page`` rows at a time (for exports).

        Each page is its own short read, so a long export neither holds the whole history in
        memory nor keeps a read transaction open (which would stop WAL checkpoints).
        """
        last = after_id
        while True:
            rows = self.history(
                device=device,
                resource=resource,
                since=since,
                after_id=last,
                limit=max(1, page),
                newest_first=False,
            )
            yield from rows
            if len(rows) < max(1, page):
                return
            last = rows[-1].id

    # -- outbox --------------------------------------------------------------------------------

    def pending(
        self, device: str | None = None, *, limit: int = 100, after_id: int | None = None
    ) -> list[OutboxItem]:
        """Unconfirmed reports in delivery order (oldest first)."""
        clauses: list[str] = []
        params: list[object] = []
        if device is not None:
            clauses.append("device = ?")
            params.append(device)
        if after_id is not None:
            clauses.append("id > ?")
            params.append(after_id)
        params.append(max(0, limit))
        sql = _compose(_OUTBOX_SELECT, clauses, "ORDER BY id LIMIT ?")
        return [OutboxItem(*r) for r in self._select("read outbox", sql, params)]

    def last_pending_id(self, device: str) -> int | None:
        """The newest unconfirmed report's outbox id of ``device`` (None: nothing pending)."""
        rows = self._select("read outbox", "SELECT max(id) FROM outbox WHERE device = ?", (device,))
        return None if rows[0][0] is None else int(rows[0][0])

    def sent_before(self, device: str, resource: str, history_id: int) -> str | None:
        """The value ``device`` sent to ``resource`` just before the history row ``history_id``
        (None: nothing before it)."""
        rows = self._select(
            "read history",
            "SELECT value FROM history WHERE device = ? AND resource = ? AND direction = 'out'"
            " AND id < ? ORDER BY id DESC LIMIT 1",
            (device, resource, history_id),
        )
        return str(rows[0][0]) if rows else None

    def first_sent(self, device: str, resource: str, value: str) -> int | None:
        """The history id of the first time ``device`` sent ``value`` to ``resource``."""
        rows = self._select(
            "read history",
            "SELECT min(id) FROM history WHERE device = ? AND resource = ? AND direction = 'out'"
            " AND value = ?",
            (device, resource, value),
        )
        return None if rows[0][0] is None else int(rows[0][0])

    def count_pending(self, device: str | None = None) -> int:
        if device is None:
            return self._scalar_int("count outbox", "SELECT count(*) FROM outbox")
        return self._scalar_int(
            "count outbox", "SELECT count(*) FROM outbox WHERE device = ?", (device,)
        )

    # -- transfer state, cache index, session state ------------------------------------------

    def get_transfer(self, key: str) -> TransferState | None:
        rows = self._select(
            "read transfer state",
            "SELECT key, partial_path, bytes_done, total, validator, sha256, updated_at"
            " FROM transfer_state WHERE key = ?",
            (key,),
        )
        return TransferState(*rows[0]) if rows else None

    def transfers(self) -> list[TransferState]:
        rows = self._select(
            "read transfer state",
            "SELECT key, partial_path, bytes_done, total, validator, sha256, updated_at"
            " FROM transfer_state ORDER BY key",
        )
        return [TransferState(*r) for r in rows]

    def get_cache(self, key: str) -> CacheEntry | None:
        rows = self._select(
            "read cache index",
            "SELECT key, sha256, size, path, fetched_at FROM cache_entry WHERE key = ?",
            (key,),
        )
        return CacheEntry(*rows[0]) if rows else None

    def find_cache(self, sha256: str) -> list[CacheEntry]:
        """Cache entries holding this content (newest first); several sources may share it."""
        rows = self._select(
            "read cache index",
            "SELECT key, sha256, size, path, fetched_at FROM cache_entry WHERE sha256 = ?"
            " ORDER BY fetched_at DESC, key",
            (sha256.lower(),),
        )
        return [CacheEntry(*r) for r in rows]

    def get_session(self, device: str) -> SessionState | None:
        rows = self._select(
            "read session state",
            "SELECT device, snapshot, updated_at FROM session_state WHERE device = ?",
            (device,),
        )
        return SessionState(*rows[0]) if rows else None

    # -- fetched manifests ---------------------------------------------------------------------

    def get_fetched(self, device: str) -> FetchedManifest | None:
        """The manifest ``otatui fetch`` stored for ``device``, if any."""
        rows = self._select(
            "read fetched manifest",
            "SELECT device, raw, version, files, fetched_at, used_at, ack_history_id, settled_at"
            " FROM fetched_manifest WHERE device = ?",
            (device,),
        )
        if not rows:
            return None
        row = list(rows[0])
        try:
            files = json.loads(row[3])
        except ValueError:
            files = []
        row[3] = tuple(f if isinstance(f, str) else None for f in files)
        return FetchedManifest(*row)
