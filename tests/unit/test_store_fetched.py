"""The store's fetched manifests (store-and-forward), the schema migration, the data-dir lock."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from otatui.store import SCHEMA_VERSION, PendingReport, Store, StoreReader
from otatui.store.lock import DataDirBusy, DataDirLock
from otatui.store.schema import MIGRATIONS

RAW = '{"version":"2.0.0","name":"fw","type":"FILE","payload":"fw.bin"}'


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = Store.open(tmp_path / "db" / "otatui.db")
    try:
        yield s
    finally:
        s.close()


def test_put_get_replace_and_delete(store: Store) -> None:
    assert store.get_fetched("s1") is None
    store.put_fetched(device="s1", raw=RAW, version="2.0.0", files=["ab" * 32], fetched_at=10.0)
    got = store.get_fetched("s1")
    assert got is not None
    assert (got.raw, got.version, got.files, got.fetched_at) == (RAW, "2.0.0", ("ab" * 32,), 10.0)
    assert got.used_at is None and not got.pending_settlement
    other = RAW.replace("2.0.0", "3.0.0")
    store.put_fetched(device="s1", raw=other, version="3.0.0", files=[None], fetched_at=11.0)
    got = store.get_fetched("s1")
    assert got is not None and got.raw == other and got.files == (None,)
    assert store.delete_fetched("s1") and store.get_fetched("s1") is None
    assert not store.delete_fetched("s1")


def test_record_step_marks_the_fetched_manifest_used_with_its_queued_ack(store: Store) -> None:
    store.put_fetched(device="s1", raw=RAW, version="2.0.0", files=[None], fetched_at=10.0)
    done = store.record_step(
        device="s1",
        reports=[
            PendingReport(resource="config_otau", value=RAW, source="mqtt", produced_at=20.0),
            PendingReport(resource="otau_in", value="{}", source="mqtt", produced_at=20.0),
        ],
        snapshot="{}",
        time=20.0,
        fetched_ack=RAW,
    )
    got = store.get_fetched("s1")
    assert got is not None and got.used_at == 20.0 and got.pending_settlement
    assert got.ack_history_id == done[0].history_id
    assert [i.resource for i in store.pending("s1")] == ["config_otau", "otau_in"]
    # Fetched again with the same text: the offline-use marks stay (still to be reconciled).
    store.put_fetched(device="s1", raw=RAW, version="2.0.0", files=["cd" * 32], fetched_at=30.0)
    again = store.get_fetched("s1")
    assert again is not None and again.used_at == 20.0 and again.files == ("cd" * 32,)
    assert store.settle_fetched("s1", 40.0)
    settled = store.get_fetched("s1")
    assert settled is not None and settled.settled_at == 40.0 and not settled.pending_settlement
    assert not store.settle_fetched("s1", 41.0)  # nothing left to settle


def test_record_step_without_a_matching_fetched_manifest_changes_nothing(store: Store) -> None:
    store.put_fetched(device="s1", raw=RAW, version="2.0.0", files=[], fetched_at=10.0)
    store.record_step(
        device="s1",
        reports=[PendingReport(resource="config_otau", value="other", source="mqtt")],
        snapshot=None,
        fetched_ack="other",
    )
    got = store.get_fetched("s1")
    assert got is not None and got.used_at is None


def test_a_version_1_store_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO history (time, device, direction, resource, value, source)"
        " VALUES (1.0, 'd', 'in', 'config_otau', 'x', 'mqtt')"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with pytest.raises(Exception, match="schema version 1"):
        StoreReader.open_readonly(path)
    store = Store.open(path)
    try:
        assert SCHEMA_VERSION == 2
        assert [r.value for r in store.history()] == ["x"]
        store.put_fetched(device="d", raw=RAW, version="2.0.0", files=[])
        assert store.get_fetched("d") is not None
    finally:
        store.close()
    with StoreReader.open_readonly(path) as reader:
        assert reader.get_fetched("d") is not None


def test_data_dir_lock_is_exclusive_and_says_who_holds_it(tmp_path: Path) -> None:
    with DataDirLock(tmp_path / "data", "otatui run") as held:
        assert held.held
        with pytest.raises(DataDirBusy) as info:
            DataDirLock(tmp_path / "data", "otatui sync").acquire()
        message = str(info.value)
        assert "otatui run (pid " in message and "otatui sync" in message
        assert "\n" not in message
    # Released: the next one gets it.
    with DataDirLock(tmp_path / "data", "otatui sync") as again:
        assert again.held


def test_data_dir_lock_held_by_another_process_and_freed_when_it_dies(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from otatui.store.lock import DataDirLock
        lock = DataDirLock(Path({str(tmp_path)!r}), "otatui run")
        lock.acquire()
        print("held", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(DataDirBusy, match=f"pid {proc.pid}"):
            DataDirLock(tmp_path, "otatui sync").acquire()
    finally:
        proc.kill()
        proc.wait(10)
    with DataDirLock(tmp_path, "otatui sync") as lock:  # a killed holder leaves no stale lock
        assert lock.held


def test_last_pending_id(store: Store) -> None:
    assert store.last_pending_id("s1") is None
    done = store.record_step(
        device="s1",
        reports=[PendingReport(resource="otau_in", value=str(i), source="mqtt") for i in range(3)],
        snapshot=None,
    )
    store.enqueue(device="other", resource="otau_in", value="x", source="mqtt")
    assert store.last_pending_id("s1") == done[-1].outbox_id
    store.confirm([e.outbox_id for e in done])
    assert store.last_pending_id("s1") is None
