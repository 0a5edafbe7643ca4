"""The store's schema, its migrations, and how its file and connections are opened."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Literal

from otatui.store.rows import StoreError

Synchronous = Literal["NORMAL", "FULL"]
BUSY_TIMEOUT_S = 5.0

# Each migration is a list of statements run in one transaction that also sets user_version.
# Never edit a released migration: append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            time REAL NOT NULL,
            device TEXT NOT NULL,
            direction TEXT NOT NULL CHECK (direction IN ('in', 'out', 'local')),
            resource TEXT NOT NULL,
            value TEXT NOT NULL,
            version TEXT,
            status TEXT,
            source TEXT NOT NULL,
            note TEXT,
            delivered_at REAL
        )""",
        "CREATE INDEX history_device_id ON history (device, id)",
        "CREATE INDEX history_time ON history (time)",
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            device TEXT NOT NULL,
            resource TEXT NOT NULL,
            value TEXT NOT NULL,
            produced_at REAL NOT NULL,
            history_id INTEGER NOT NULL UNIQUE REFERENCES history (id),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT
        )""",
        "CREATE INDEX outbox_device_id ON outbox (device, id)",
        """CREATE TABLE transfer_state (
            key TEXT PRIMARY KEY,
            partial_path TEXT NOT NULL,
            bytes_done INTEGER NOT NULL CHECK (bytes_done >= 0),
            total INTEGER,
            validator TEXT,
            sha256 TEXT,
            updated_at REAL NOT NULL
        )""",
        """CREATE TABLE cache_entry (
            key TEXT PRIMARY KEY,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL CHECK (size >= 0),
            path TEXT NOT NULL,
            fetched_at REAL NOT NULL
        )""",
        "CREATE INDEX cache_entry_sha256 ON cache_entry (sha256)",
        """CREATE TABLE session_state (
            device TEXT PRIMARY KEY,
            snapshot TEXT NOT NULL,
            updated_at REAL NOT NULL
        )""",
    ),
    (
        # The manifest `otatui fetch` read for a device, for offline work (store-and-forward).
        """CREATE TABLE fetched_manifest (
            device TEXT PRIMARY KEY,
            raw TEXT NOT NULL,
            version TEXT,
            files TEXT NOT NULL,
            fetched_at REAL NOT NULL,
            used_at REAL,
            ack_history_id INTEGER REFERENCES history (id),
            settled_at REAL
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def create_private(path: Path) -> None:
    """Create missing parent directories (mode 0700) and the file itself (0600) if absent.

    Existing directories and an existing file keep the modes their owner gave them.
    """
    missing: list[Path] = []
    parent = path.parent
    while not parent.exists() and parent.parent != parent:
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # created meanwhile by another process
            directory.mkdir(mode=0o700)
            directory.chmod(0o700)  # mkdir's mode is filtered by the umask
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def rollback(conn: sqlite3.Connection) -> None:
    """End the open transaction, if any, without masking the error being handled."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    uri = path.resolve().as_uri() + ("?mode=ro" if readonly else "?mode=rw")
    try:
        conn = sqlite3.connect(
            uri,
            uri=True,
            timeout=BUSY_TIMEOUT_S,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,  # access is serialised by the store's lock
        )
    except sqlite3.Error as exc:
        raise StoreError(f"store {path}: cannot open: {exc}") from None
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    return conn


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the schema to SCHEMA_VERSION, one transaction per step."""
    while True:
        conn.execute("BEGIN IMMEDIATE")  # re-read the version under the write lock
        try:
            version = user_version(conn)
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"store {path}: schema version {version} is newer than this otatui"
                    f" ({SCHEMA_VERSION}); upgrade otatui"
                )
            if version == SCHEMA_VERSION:
                conn.execute("COMMIT")
                return
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise
