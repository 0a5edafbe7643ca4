"""The read-write store: the one writer (the engine) records history and drives the outbox.

Every write is one short ``BEGIN IMMEDIATE ... COMMIT`` transaction, so readers in other threads
or processes are never blocked for long (WAL) and a killed process leaves either the whole
write or none of it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from otatui.store.reader import StoreReader
from otatui.store.rows import (
    DIRECTIONS,
    CacheEntry,
    Direction,
    Enqueued,
    PendingReport,
    StoreError,
    TransferState,
)
from otatui.store.schema import Synchronous, connect, create_private, migrate, rollback

MAX_ERROR_CHARS = 500


class Store(StoreReader):
    """The read-write store. Open it with :meth:`Store.open`; one writer process at a time."""

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, synchronous: Synchronous = "NORMAL") -> Self:
        """Open (creating and migrating if needed) the store file at ``path``.

        A missing parent directory is created with mode 0700, a new file with mode 0600 (SQLite
        gives its ``-wal``/``-shm`` files the same mode).
        """
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        p = Path(path)
        try:
            create_private(p)
        except OSError as exc:
            raise StoreError(f"store {p}: cannot create: {exc.strerror or exc}") from None
        conn = connect(p, readonly=False)
        try:
            conn.execute(f"PRAGMA synchronous = {synchronous}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"store {p}: cannot switch to WAL mode (got {mode})")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn, p)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"store {p}: cannot open: {exc}") from None
        except StoreError:
            conn.close()
            raise
        return cls(conn, p)

    @contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        """One short write transaction; rolled back if anything in it fails."""
        with self._guard(action) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise

    # -- history -------------------------------------------------------------------------------

    def add_history(
        self,
        *,
        device: str,
        direction: Direction,
        resource: str,
        value: str,
        source: str,
        time: float | None = None,
        version: str | None = None,
        status: str | None = None,
        note: str | None = None,
        delivered_at: float | None = None,
    ) -> int:
        """Record an event that needs no delivery (manifest received, local step...).

        Pass ``delivered_at`` for an ``out`` row that is already in the cloud (e.g. a report a
        monitor observed there). Returns the new row's id.
        """
        _check_direction(direction)
        with self._write("record history") as conn:
            return _insert_history(
                conn,
                (
                    _now(time),
                    device,
                    direction,
                    resource,
                    value,
                    version,
                    status,
                    source,
                    note,
                    delivered_at,
                ),
            )

    # -- outbox --------------------------------------------------------------------------------

    def enqueue(
        self,
        *,
        device: str,
        resource: str,
        value: str,
        source: str,
        produced_at: float | None = None,
        version: str | None = None,
        status: str | None = None,
        note: str | None = None,
    ) -> Enqueued:
        """Record a device->cloud report in the history and the outbox, in one transaction."""
        produced = _now(produced_at)
        with self._write("enqueue report") as conn:
            history_id = _insert_history(
                conn,
                (produced, device, "out", resource, value, version, status, source, note, None),
            )
            cur = conn.execute(
                "INSERT INTO outbox (device, resource, value, produced_at, history_id)"
                " VALUES (?, ?, ?, ?, ?)",
                (device, resource, value, produced, history_id),
            )
            return Enqueued(outbox_id=_lastrowid(cur), history_id=history_id)

    def confirm(self, outbox_ids: Iterable[int], delivered_at: float | None = None) -> int:
        """The connector confirmed these reports: drop them from the outbox and mark their history
        rows delivered, in one transaction. Unknown (already confirmed) ids are ignored.
        Returns how many were confirmed now."""
        ids = list(dict.fromkeys(outbox_ids))
        if not ids:
            return 0
        when = _now(delivered_at)
        done = 0
        with self._write("confirm reports") as conn:
            for outbox_id in ids:
                row = conn.execute(
                    "SELECT history_id FROM outbox WHERE id = ?", (outbox_id,)
                ).fetchone()
                if row is None:
                    continue
                conn.execute("UPDATE history SET delivered_at = ? WHERE id = ?", (when, row[0]))
                conn.execute("DELETE FROM outbox WHERE id = ?", (outbox_id,))
                done += 1
        return done

    def note_failure(self, outbox_id: int, error: str) -> bool:
        """Count a failed delivery attempt with its reason. False if the id is not pending."""
        reason = " ".join(error.split())[:MAX_ERROR_CHARS]
        with self._write("note delivery failure") as conn:
            cur = conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                (reason, outbox_id),
            )
            return cur.rowcount > 0

    # -- transfer state ------------------------------------------------------------------------

    def put_transfer(self, state: TransferState) -> None:
        with self._write("save transfer state") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO transfer_state"
                " (key, partial_path, bytes_done, total, validator, sha256, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    state.key,
                    state.partial_path,
                    state.bytes_done,
                    state.total,
                    state.validator,
                    state.sha256,
                    state.updated_at,
                ),
            )

    def delete_transfer(self, key: str) -> bool:
        with self._write("delete transfer state") as conn:
            return conn.execute("DELETE FROM transfer_state WHERE key = ?", (key,)).rowcount > 0

    # -- cache index ---------------------------------------------------------------------------

    def put_cache(self, entry: CacheEntry) -> None:
        with self._write("save cache entry") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO cache_entry (key, sha256, size, path, fetched_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (entry.key, entry.sha256.lower(), entry.size, entry.path, entry.fetched_at),
            )

    def delete_cache(self, key: str) -> bool:
        with self._write("delete cache entry") as conn:
            return conn.execute("DELETE FROM cache_entry WHERE key = ?", (key,)).rowcount > 0

    # -- session step: reports and state together -----------------------------------------------

    def record_step(
        self,
        *,
        device: str,
        reports: Iterable[PendingReport],
        snapshot: str | None,
        time: float | None = None,
        fetched_ack: str | None = None,
    ) -> list[Enqueued]:
        """Enqueue ``reports`` and save the session ``snapshot`` in ONE transaction.

        A crash can then never leave a state machine that believes a report was made while the
        outbox lacks it (lost report), nor an outbox holding reports the restored machine will
        make again (duplicate report).

        ``fetched_ack``: the raw text of the device's fetched manifest whose acknowledgement is
        among ``reports`` (a ``config_otau`` value): the fetched manifest is marked used, with
        that acknowledgement's history row, in the same transaction.
        """
        produced = _now(time)
        out: list[Enqueued] = []
        with self._write("record session step") as conn:
            for r in reports:
                at = produced if r.produced_at is None else r.produced_at
                history_id = _insert_history(
                    conn,
                    (at, device, "out", r.resource, r.value, r.version, r.status, r.source,
                     r.note, None),
                )  # fmt: skip
                cur = conn.execute(
                    "INSERT INTO outbox (device, resource, value, produced_at, history_id)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (device, r.resource, r.value, at, history_id),
                )
                out.append(Enqueued(outbox_id=_lastrowid(cur), history_id=history_id))
                if fetched_ack is not None and (r.resource, r.value) == (
                    "config_otau",
                    fetched_ack,
                ):
                    conn.execute(
                        "UPDATE fetched_manifest SET used_at = ?, ack_history_id = ?,"
                        " settled_at = NULL WHERE device = ? AND raw = ?",
                        (at, history_id, device, storable(fetched_ack)),
                    )
            if snapshot is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO session_state (device, snapshot, updated_at)"
                    " VALUES (?, ?, ?)",
                    (device, snapshot, produced),
                )
        return out

    # -- fetched manifests ---------------------------------------------------------------------

    def put_fetched(
        self,
        *,
        device: str,
        raw: str,
        version: str | None,
        files: Sequence[str | None],
        fetched_at: float | None = None,
    ) -> None:
        """Keep the manifest ``otatui fetch`` read for ``device`` (replacing an older one).

        The same text fetched again keeps its offline-use marks (the same update, still to be
        reconciled with the cloud); another text starts afresh.
        """
        listed = json.dumps(list(files))
        when = _now(fetched_at)
        with self._write("save fetched manifest") as conn:
            row = conn.execute(
                "SELECT raw FROM fetched_manifest WHERE device = ?", (device,)
            ).fetchone()
            if row is not None and row[0] == storable(raw):
                conn.execute(
                    "UPDATE fetched_manifest SET version = ?, files = ?, fetched_at = ?"
                    " WHERE device = ?",
                    (storable(version), listed, when, device),
                )
                return
            conn.execute(
                "INSERT OR REPLACE INTO fetched_manifest (device, raw, version, files, fetched_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (device, storable(raw), storable(version), listed, when),
            )

    def delete_fetched(self, device: str) -> bool:
        with self._write("delete fetched manifest") as conn:
            cur = conn.execute("DELETE FROM fetched_manifest WHERE device = ?", (device,))
            return cur.rowcount > 0

    def settle_fetched(self, device: str, settled_at: float | None = None) -> bool:
        """The cloud delivered the fetched manifest after it was worked offline (acknowledged
        only): it needs no more reconciling. False if there was nothing to settle."""
        with self._write("settle fetched manifest") as conn:
            cur = conn.execute(
                "UPDATE fetched_manifest SET settled_at = ?"
                " WHERE device = ? AND used_at IS NOT NULL AND settled_at IS NULL",
                (_now(settled_at), device),
            )
            return cur.rowcount > 0

    # -- session state -------------------------------------------------------------------------

    def put_session(self, device: str, snapshot: str, updated_at: float | None = None) -> None:
        with self._write("save session state") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO session_state (device, snapshot, updated_at)"
                " VALUES (?, ?, ?)",
                (device, snapshot, _now(updated_at)),
            )

    def delete_session(self, device: str) -> bool:
        with self._write("delete session state") as conn:
            return (
                conn.execute("DELETE FROM session_state WHERE device = ?", (device,)).rowcount > 0
            )


def _now(value: float | None) -> float:
    return time.time() if value is None else float(value)


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")


def _lastrowid(cur: sqlite3.Cursor) -> int:
    rowid = cur.lastrowid
    if rowid is None:  # pragma: no cover - sqlite always sets it after an INSERT
        raise StoreError("store: insert returned no row id")
    return rowid


def storable(value: object) -> object:
    """Text SQLite can hold: lone surrogates (bytes that were not UTF-8, decoded with
    surrogateescape) become backslash escapes instead of failing the whole write."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raw = value.encode("utf-8", "surrogateescape")
            return raw.decode("utf-8", "backslashreplace")
    return value


def _insert_history(conn: sqlite3.Connection, values: tuple[object, ...]) -> int:
    cur = conn.execute(
        "INSERT INTO history (time, device, direction, resource, value, version, status,"
        " source, note, delivered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        tuple(storable(v) for v in values),
    )
    return _lastrowid(cur)
