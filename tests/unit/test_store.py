"""The durable store: each API, outbox order and atomicity, migrations, readers while writing."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from otatui.store import (
    SCHEMA_VERSION,
    CacheEntry,
    Store,
    StoreError,
    StoreReader,
    TransferState,
)
from otatui.store import schema as schema_module

SHA = "ab" * 32


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "otatui.db"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    s = Store.open(db)
    yield s
    s.close()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _raw(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(db, isolation_level=None)


# -- opening, files, schema --------------------------------------------------------------------


def test_open_creates_private_dir_and_files(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "otatui.db"
    old = os.umask(0o022)
    try:
        with Store.open(db) as s:
            s.add_history(device="d", direction="local", resource="x", value="v", source="local")
            assert _mode(db.parent) == 0o700
            assert _mode(db.parent.parent) == 0o700
            assert _mode(db) == 0o600
            assert _mode(Path(f"{db}-wal")) == 0o600
            assert _mode(Path(f"{db}-shm")) == 0o600
    finally:
        os.umask(old)


def test_open_sets_wal_schema_version_and_foreign_keys(store: Store, db: Path) -> None:
    with _raw(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_open_full_synchronous(db: Path) -> None:
    with Store.open(db, synchronous="FULL") as s:
        assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    with pytest.raises(ValueError, match="NORMAL or FULL"):
        Store.open(db, synchronous="OFF")  # type: ignore[arg-type]


def test_migration_from_empty_file(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    db.touch()
    with Store.open(db) as s:
        assert s.count_history() == 0
        assert s.count_pending() == 0
    with _raw(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"history", "outbox", "transfer_state", "cache_entry", "session_state"} <= tables
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_migration_step_applies_once_and_keeps_data(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store.open(db) as s:
        hid = s.add_history(
            device="d", direction="in", resource="config_otau", value="{}", source="http"
        )
    step = ("ALTER TABLE history ADD COLUMN extra TEXT", "UPDATE history SET extra = 'x'")
    monkeypatch.setattr(schema_module, "MIGRATIONS", (*schema_module.MIGRATIONS, step))
    monkeypatch.setattr(schema_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    for _ in range(2):  # the second open finds nothing to do
        with Store.open(db) as s:
            assert s.get_history(hid) is not None
    with _raw(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert conn.execute("SELECT extra FROM history").fetchall() == [("x",)]


def test_failed_migration_rolls_back(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Store.open(db).close()
    step = ("CREATE TABLE half_done (x)", "THIS IS NOT SQL")
    monkeypatch.setattr(schema_module, "MIGRATIONS", (*schema_module.MIGRATIONS, step))
    monkeypatch.setattr(schema_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="cannot open") as info:
        Store.open(db)
    assert "\n" not in str(info.value)
    with _raw(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert "half_done" not in names


def test_newer_schema_is_refused(db: Path) -> None:
    Store.open(db).close()
    with _raw(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    with pytest.raises(StoreError, match="newer than this otatui"):
        Store.open(db)
    with pytest.raises(StoreError, match="schema version"):
        Store.open_readonly(db)


def test_not_a_database_gives_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError) as info:
        Store.open(bad)
    message = str(info.value)
    assert str(bad) in message
    assert "\n" not in message


def test_unwritable_location_gives_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create"):
        Store.open(blocker / "sub" / "otatui.db")


def test_schema_has_no_place_for_secrets(store: Store) -> None:
    tables = [
        r[0] for r in store._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
    ]
    for table in tables:
        for column in store._conn.execute(f"PRAGMA table_info({table})"):
            assert not any(word in column[1].lower() for word in ("token", "secret", "password"))


def test_closed_store_raises(db: Path) -> None:
    s = Store.open(db)
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreError, match="after close"):
        s.count_pending()
    with pytest.raises(StoreError, match="after close"):
        s.put_session("d", "{}")


# -- history -----------------------------------------------------------------------------------


def test_history_keeps_raw_value_and_exact_time(store: Store) -> None:
    raw = ' {"version": "1.2",\r\n "name": "fw ✓", "z": "\\u0000"}\x00 tail\t'
    t = 1717171717.123456789
    hid = store.add_history(
        time=t,
        device="pump-7",
        direction="in",
        resource="config_otau",
        value=raw,
        source="mqtt",
        version="1.2",
        note="received",
    )
    row = store.get_history(hid)
    assert row is not None
    assert row.value == raw
    assert row.time == t
    assert (row.device, row.direction, row.resource, row.source) == (
        "pump-7",
        "in",
        "config_otau",
        "mqtt",
    )
    assert (row.version, row.status, row.note, row.delivered_at) == ("1.2", None, "received", None)
    assert store.get_history(hid + 100) is None


def test_history_defaults_time_to_now(store: Store) -> None:
    import time

    before = time.time()
    hid = store.add_history(device="d", direction="local", resource="x", value="v", source="local")
    row = store.get_history(hid)
    assert row is not None
    assert before <= row.time <= time.time()


def test_history_rejects_unknown_direction(store: Store) -> None:
    with pytest.raises(ValueError, match="direction must be one of"):
        store.add_history(device="d", direction="up", resource="x", value="v", source="s")  # type: ignore[arg-type]
    assert store.count_history() == 0


def test_history_out_row_already_delivered(store: Store) -> None:
    hid = store.add_history(
        device="d", direction="out", resource="otau_in", value="{}", source="http", delivered_at=5.0
    )
    row = store.get_history(hid)
    assert row is not None
    assert row.delivered_at == 5.0


def _fill(store: Store) -> list[int]:
    ids = []
    for i in range(10):
        ids.append(
            store.add_history(
                time=100.0 + i,
                device=f"d{i % 2}",
                direction="in" if i % 3 == 0 else "local",
                resource="config_otau" if i % 3 == 0 else "step",
                value=f"v{i}",
                source="http",
            )
        )
    return ids


def test_history_queries(store: Store) -> None:
    ids = _fill(store)
    assert [r.id for r in store.history()] == ids[::-1]
    assert [r.id for r in store.history(newest_first=False)] == ids
    assert [r.id for r in store.history(limit=3)] == ids[:-4:-1]
    assert store.history(limit=0) == []
    assert [r.value for r in store.history(device="d1", newest_first=False)] == [
        "v1",
        "v3",
        "v5",
        "v7",
        "v9",
    ]
    assert [r.value for r in store.history(resource="config_otau", newest_first=False)] == [
        "v0",
        "v3",
        "v6",
        "v9",
    ]
    assert [r.value for r in store.history(since=107.0, newest_first=False)] == ["v7", "v8", "v9"]
    assert [r.id for r in store.history(after_id=ids[6], newest_first=False)] == ids[7:]
    rows = store.history(device="d0", resource="config_otau", since=101.0)
    assert [r.value for r in rows] == ["v6"]
    assert store.count_history() == 10
    assert store.count_history(device="d0") == 5
    assert store.count_history(resource="step", since=105.0) == 3
    assert store.count_history(device="nobody") == 0


@pytest.mark.parametrize("page", [1, 3, 10, 500])
def test_iter_history_pages_through_everything_in_order(store: Store, page: int) -> None:
    ids = _fill(store)
    assert [r.id for r in store.iter_history(page=page)] == ids
    assert [r.value for r in store.iter_history(device="d0", page=page)] == [
        "v0",
        "v2",
        "v4",
        "v6",
        "v8",
    ]
    assert [r.id for r in store.iter_history(after_id=ids[7], page=page)] == ids[8:]


def test_iter_history_is_lazy(store: Store) -> None:
    ids = _fill(store)
    it = store.iter_history(page=4)
    first = [next(it).id for _ in range(4)]
    extra = store.add_history(device="d", direction="local", resource="x", value="v", source="l")
    assert first + [r.id for r in it] == [*ids, extra]  # later pages are read later


# -- outbox ------------------------------------------------------------------------------------


def test_enqueue_writes_history_and_outbox(store: Store) -> None:
    e = store.enqueue(
        device="pump-7",
        resource="otau_in",
        value='{"version":"2","status":"INIT"}',
        source="serial",
        produced_at=1234.5,
        version="2",
        status="INIT",
    )
    [item] = store.pending()
    assert item.id == e.outbox_id
    assert item.history_id == e.history_id
    assert (item.device, item.resource, item.value, item.produced_at) == (
        "pump-7",
        "otau_in",
        '{"version":"2","status":"INIT"}',
        1234.5,
    )
    assert (item.attempts, item.last_error) == (0, None)
    row = store.get_history(e.history_id)
    assert row is not None
    assert (row.direction, row.time, row.status, row.source, row.delivered_at) == (
        "out",
        1234.5,
        "INIT",
        "serial",
        None,
    )


def test_pending_in_order_with_filters(store: Store) -> None:
    # produced_at deliberately not monotonic: the order is the order of enqueueing
    enq = [
        store.enqueue(
            device=f"d{i % 3}", resource="otau_in", value=f"r{i}", source="mqtt", produced_at=50 - i
        )
        for i in range(12)
    ]
    assert [p.value for p in store.pending(limit=100)] == [f"r{i}" for i in range(12)]
    assert [p.value for p in store.pending("d1")] == ["r1", "r4", "r7", "r10"]
    assert [p.value for p in store.pending(limit=2)] == ["r0", "r1"]
    assert [p.value for p in store.pending(after_id=enq[9].outbox_id)] == ["r10", "r11"]
    assert store.pending(limit=0) == []
    assert store.count_pending() == 12
    assert store.count_pending("d2") == 4
    assert store.count_pending("zz") == 0


def test_confirm_removes_and_marks_delivered(store: Store) -> None:
    enq = [
        store.enqueue(device="d", resource="otau_in", value=f"r{i}", source="http")
        for i in range(4)
    ]
    n = store.confirm([enq[0].outbox_id, enq[2].outbox_id, enq[2].outbox_id], delivered_at=99.0)
    assert n == 2
    assert [p.value for p in store.pending()] == ["r1", "r3"]
    delivered = {e.history_id: store.get_history(e.history_id) for e in enq}
    assert [delivered[e.history_id].delivered_at for e in enq] == [99.0, None, 99.0, None]  # type: ignore[union-attr]
    # idempotent: already confirmed / unknown ids are ignored and nothing changes
    assert store.confirm([enq[0].outbox_id, 12345], delivered_at=200.0) == 0
    row = store.get_history(enq[0].history_id)
    assert row is not None
    assert row.delivered_at == 99.0
    assert store.confirm([]) == 0
    assert store.count_pending() == 2


def test_confirm_is_atomic(store: Store) -> None:
    enq = [
        store.enqueue(device="d", resource="otau_in", value=f"r{i}", source="http")
        for i in range(3)
    ]
    # make the delete of the second report fail inside the confirm transaction
    store._conn.execute(
        f"CREATE TEMP TRIGGER fail_second BEFORE DELETE ON main.outbox"
        f" WHEN old.id = {enq[1].outbox_id} BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
    )
    with pytest.raises(StoreError, match="confirm reports failed: disk on fire"):
        store.confirm([e.outbox_id for e in enq], delivered_at=7.0)
    assert [p.value for p in store.pending()] == ["r0", "r1", "r2"]
    assert all(store.get_history(e.history_id).delivered_at is None for e in enq)  # type: ignore[union-attr]
    assert not store._conn.in_transaction
    store._conn.execute("DROP TRIGGER fail_second")
    assert store.confirm([e.outbox_id for e in enq], delivered_at=7.0) == 3


def test_enqueue_is_atomic(store: Store) -> None:
    store._conn.execute(
        "CREATE TEMP TRIGGER no_outbox BEFORE INSERT ON main.outbox"
        " BEGIN SELECT RAISE(ABORT, 'no room'); END"
    )
    with pytest.raises(StoreError, match="enqueue report failed"):
        store.enqueue(device="d", resource="otau_in", value="x", source="http")
    assert store.count_history() == 0  # the history row went away with the outbox row
    assert store.count_pending() == 0


def test_outbox_row_needs_its_history_row(store: Store) -> None:
    e = store.enqueue(device="d", resource="otau_in", value="x", source="http")
    with pytest.raises(sqlite3.IntegrityError):
        store._conn.execute("DELETE FROM history WHERE id = ?", (e.history_id,))


def test_note_failure(store: Store) -> None:
    e = store.enqueue(device="d", resource="otau_in", value="x", source="http")
    assert store.note_failure(e.outbox_id, "connection refused\n  (errno 111)")
    assert store.note_failure(e.outbox_id, "timeout " + "x" * 2000)
    [item] = store.pending()
    assert item.attempts == 2
    assert item.last_error is not None
    assert item.last_error.startswith("timeout x")
    assert len(item.last_error) == 500
    assert not store.note_failure(e.outbox_id + 1, "nope")
    store.note_failure(e.outbox_id, "connection refused\n  (errno 111)")
    assert store.pending()[0].last_error == "connection refused (errno 111)"


# -- transfer state, cache index, session state ------------------------------------------------


def test_transfer_state(store: Store) -> None:
    key = "https://example.test/fw.bin"
    assert store.get_transfer(key) is None
    t = TransferState(key, "/cache/part/fw.bin.part", 1024, None, 'W/"etag"', None, 10.0)
    store.put_transfer(t)
    assert store.get_transfer(key) == t
    t2 = TransferState(key, "/cache/part/fw.bin.part", 4096, 8192, 'W/"etag"', SHA, 11.0)
    store.put_transfer(t2)
    other = TransferState("murano:content/fw2", "/p2", 0, 10, None, None, 12.0)
    store.put_transfer(other)
    assert store.get_transfer(key) == t2
    assert store.transfers() == [t2, other]
    assert store.delete_transfer(key)
    assert not store.delete_transfer(key)
    assert store.get_transfer(key) is None


def test_cache_index(store: Store) -> None:
    a = CacheEntry("https://x.test/a.bin", SHA, 10, f"/cache/{SHA}", 1.0)
    b = CacheEntry("murano:content/a.bin", SHA.upper(), 10, f"/cache/{SHA}", 2.0)
    store.put_cache(a)
    store.put_cache(b)
    assert store.get_cache(a.key) == a
    got_b = store.get_cache(b.key)
    assert got_b is not None
    assert got_b.sha256 == SHA  # digests are kept lower-case
    assert [e.key for e in store.find_cache(SHA.upper())] == [b.key, a.key]
    assert store.find_cache("cd" * 32) == []
    assert store.get_cache("nope") is None
    assert store.delete_cache(a.key)
    assert not store.delete_cache(a.key)
    assert [e.key for e in store.find_cache(SHA)] == [b.key]


def test_session_state(store: Store) -> None:
    assert store.get_session("pump-7") is None
    store.put_session("pump-7", '{"phase": "DOWNLOAD"}', 5.0)
    store.put_session("pump-7", '{"phase": "INSTALL"}', 6.0)
    s = store.get_session("pump-7")
    assert s is not None
    assert (s.device, s.snapshot, s.updated_at) == ("pump-7", '{"phase": "INSTALL"}', 6.0)
    assert store.delete_session("pump-7")
    assert not store.delete_session("pump-7")
    assert store.get_session("pump-7") is None


def test_reopen_persists_everything(db: Path) -> None:
    with Store.open(db) as s:
        hid = s.add_history(
            device="d", direction="in", resource="config_otau", value="m", source="lan"
        )
        e = s.enqueue(device="d", resource="otau_in", value="r", source="lan", produced_at=3.0)
        s.note_failure(e.outbox_id, "offline")
        s.put_transfer(TransferState("k", "/p", 5, 9, None, None, 1.0))
        s.put_cache(CacheEntry("k", SHA, 9, "/c", 2.0))
        s.put_session("d", "{}", 4.0)
    with Store.open(db) as s:
        assert [r.id for r in s.history(newest_first=False)] == [hid, e.history_id]
        [item] = s.pending()
        assert (item.id, item.value, item.produced_at, item.attempts) == (e.outbox_id, "r", 3.0, 1)
        assert s.get_transfer("k") == TransferState("k", "/p", 5, 9, None, None, 1.0)
        assert s.get_cache("k") == CacheEntry("k", SHA, 9, "/c", 2.0)
        assert s.get_session("d") is not None
        # ids keep growing after a reopen, even once the newest outbox row is gone
        s.confirm([item.id])
        e2 = s.enqueue(device="d", resource="otau_in", value="r2", source="lan")
        assert e2.outbox_id > item.id
        assert e2.history_id > e.history_id


# -- readers -----------------------------------------------------------------------------------


def test_open_readonly(store: Store, db: Path, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such file"):
        Store.open_readonly(tmp_path / "missing.db")
    with Store.open_readonly(db) as reader:
        assert isinstance(reader, StoreReader)
        assert not isinstance(reader, Store)
        assert reader.count_pending() == 0
        store.enqueue(device="d", resource="otau_in", value="r", source="http")
        assert reader.count_pending() == 1  # sees the writer's commits at once
        assert [r.value for r in reader.history()] == ["r"]
        with pytest.raises(sqlite3.OperationalError):
            reader._conn.execute("DELETE FROM outbox")
    assert store.count_pending() == 1


def test_readonly_of_unmigrated_file_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    db.touch()
    with pytest.raises(StoreError, match="schema version 0"):
        Store.open_readonly(db)


def test_readers_in_threads_while_writing(db: Path) -> None:
    writer = Store.open(db)
    errors: list[BaseException] = []
    stop = threading.Event()
    seen: list[int] = []

    def read() -> None:
        try:
            with Store.open_readonly(db) as reader:
                last = 0
                while not stop.is_set():
                    n = reader.count_pending()
                    rows = reader.pending(limit=1000)
                    assert [r.id for r in rows] == sorted(r.id for r in rows)
                    assert all(reader.get_history(r.history_id) is not None for r in rows[:5])
                    reader.history(limit=20)
                    last = max(last, n)
                seen.append(last)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        done: list[int] = []
        for i in range(400):
            e = writer.enqueue(device=f"d{i % 4}", resource="otau_in", value=f"{i}", source="mqtt")
            done.append(e.outbox_id)
            if i % 10 == 9:
                writer.confirm(done[:5])
                del done[:5]
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        writer.close()
    assert errors == []
    assert len(seen) == 3


def test_one_store_shared_between_threads(store: Store) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(100):
                store.enqueue(device=f"t{n}", resource="otau_in", value=str(i), source="local")
                store.count_pending()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert store.count_pending() == 400
    for n in range(4):
        assert [p.value for p in store.pending(f"t{n}", limit=1000)] == [str(i) for i in range(100)]


def test_record_step_writes_reports_and_snapshot_in_one_transaction(tmp_path: Path) -> None:
    from otatui.store import PendingReport

    store = Store.open(tmp_path / "s.db")
    reports = [
        PendingReport(resource="otau_in", value=f'{{"n":{i}}}', source="mqtt", status="INIT")
        for i in range(3)
    ]
    done = store.record_step(device="d", reports=reports, snapshot='{"phase":"testing"}', time=5.0)
    assert [e.outbox_id for e in done] == sorted(e.outbox_id for e in done)
    assert [p.value for p in store.pending("d")] == [r.value for r in reports]
    state = store.get_session("d")
    assert state is not None and state.snapshot == '{"phase":"testing"}'
    # A failure inside the step rolls back everything: neither reports nor the snapshot stay.
    bad = [*reports, PendingReport(resource="otau_in", value=None, source="mqtt")]  # type: ignore[arg-type]
    with pytest.raises(Exception):  # noqa: B017 - sqlite's IntegrityError surfaces as is or wrapped
        store.record_step(device="d", reports=bad, snapshot='{"phase":"x"}')
    assert store.count_pending("d") == 3
    state = store.get_session("d")
    assert state is not None and state.snapshot == '{"phase":"testing"}'


def test_history_keeps_values_that_were_not_utf8(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    bad = b'{"version":"1\xff"}'.decode("utf-8", "surrogateescape")
    row_id = store.add_history(
        device="d", direction="in", resource="config_otau", value=bad, source="mqtt"
    )
    row = store.get_history(row_id)
    assert row is not None and row.value == '{"version":"1\\xff"}'


def test_sent_before_is_the_previous_value_sent_to_that_resource(store: Store) -> None:
    from otatui.store import PendingReport

    def sent(resource: str, value: str, device: str = "d") -> int:
        report = PendingReport(resource=resource, value=value, source="mqtt")
        (done,) = store.record_step(device=device, reports=[report], snapshot=None)
        return done.history_id

    first = sent("otau_in", "A")
    sent("config_otau", "ack")
    sent("otau_in", "other device", device="e")
    second = sent("otau_in", "B")
    store.add_history(device="d", direction="in", resource="otau_in", value="in", source="http")
    third = sent("otau_in", "C")
    assert store.sent_before("d", "otau_in", first) is None
    assert store.sent_before("d", "otau_in", second) == "A"
    assert store.sent_before("d", "otau_in", third) == "B"
    again = sent("otau_in", "A")
    assert store.first_sent("d", "otau_in", "A") == first != again
    assert store.first_sent("d", "otau_in", "C") == third
    assert store.first_sent("d", "otau_in", "in") is None  # received, not sent
    assert store.first_sent("e", "otau_in", "A") is None
