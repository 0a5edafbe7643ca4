"""The store across processes: kill -9 of the writer mid-write, and readers in other processes."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from otatui.store import Store

# Writes in a tight loop and prints a line for every transaction once it has committed:
#   E <outbox_id> <history_id>   enqueue (history + outbox row)
#   H <history_id>               history-only row
#   C <outbox_id>...             confirm of those outbox ids
#   T <n>                        transfer state saved with bytes_done = n
WRITER = r"""
import random, sys
from otatui.store import Store, TransferState

store = Store.open(sys.argv[1])
rng = random.Random(int(sys.argv[2]))
waiting = []
i = 0
while True:
    e = store.enqueue(
        device=f"d{i % 3}", resource="otau_in", source="serial", produced_at=1000.0 + i,
        value='{"version":"%d","status":"DOWNLOAD_STEP","message":"%s"}'
        % (i, "x" * rng.randrange(300)),
    )
    print("E", e.outbox_id, e.history_id, flush=True)
    waiting.append(e.outbox_id)
    if i % 3 == 0:
        h = store.add_history(
            device="d0", direction="in", resource="config_otau", value="m%d" % i, source="mqtt"
        )
        print("H", h, flush=True)
    if len(waiting) > 6 and rng.random() < 0.4:
        batch, waiting = waiting[:4], waiting[4:]
        store.confirm(batch, delivered_at=2000.0 + i)
        print("C", *batch, flush=True)
    if i % 5 == 0:
        store.put_transfer(TransferState("k", "/part", i, None, None, None, float(i)))
        print("T", i, flush=True)
    i += 1
"""

# Reads in a loop until told to stop (a line on stdin), then prints how many reads it made.
READER = r"""
import sys, threading
from otatui.store import Store

stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
reads = 0
with Store.open_readonly(sys.argv[1]) as r:
    print("ready", flush=True)
    while not stop.is_set():
        items = r.pending(limit=500)
        ids = [x.id for x in items]
        assert ids == sorted(ids), "outbox out of order"
        for x in items[:3]:
            assert r.get_history(x.history_id) is not None, "outbox row without history"
        r.count_pending("d1")
        list(r.iter_history(page=50))
        reads += 1
print("reads", reads, flush=True)
"""


@contextmanager
def _child(script: str, *args: str, stdin: int | None = None) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def _check_after_crash(db: Path, lines: list[str]) -> int:
    enqueued: dict[int, int] = {}
    confirmed: set[int] = set()
    history_only: list[int] = []
    transfer_done = -1
    for line in lines:
        kind, *nums = line.split()
        ids = [int(n) for n in nums]
        if kind == "E":
            enqueued[ids[0]] = ids[1]
        elif kind == "C":
            confirmed.update(ids)
        elif kind == "H":
            history_only.extend(ids)
        elif kind == "T":
            transfer_done = ids[0]

    with Store.open(db) as store:  # replays the WAL left by the killed writer
        conn = store._conn
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        orphans = conn.execute(
            "SELECT count(*) FROM outbox o LEFT JOIN history h ON h.id = o.history_id"
            " WHERE h.id IS NULL"
        ).fetchone()[0]
        assert orphans == 0
        # every report is either still pending or marked delivered, never both, never neither
        bad = conn.execute(
            "SELECT count(*) FROM history h WHERE h.direction = 'out' AND"
            " (h.delivered_at IS NULL) = (NOT EXISTS (SELECT 1 FROM outbox o"
            " WHERE o.history_id = h.id))"
        ).fetchone()[0]
        assert bad == 0
        pending = {p.id: p for p in store.pending(limit=1_000_000)}
        assert list(pending) == sorted(pending)
        # every transaction the child reported as committed is there
        for outbox_id, history_id in enqueued.items():
            row = store.get_history(history_id)
            assert row is not None, f"committed history row {history_id} lost"
            if outbox_id in confirmed:
                assert outbox_id not in pending
                assert row.delivered_at is not None
            else:
                # pending, unless a confirm committed just before the kill, unreported
                assert (outbox_id in pending) != (row.delivered_at is not None)
                if outbox_id in pending:
                    assert pending[outbox_id].history_id == history_id
        for history_id in history_only:
            assert store.get_history(history_id) is not None
        if transfer_done >= 0:
            state = store.get_transfer("k")
            assert state is not None
            assert state.bytes_done >= transfer_done
        # and the store keeps working after the crash
        e = store.enqueue(device="d0", resource="otau_in", value="after", source="local")
        assert e.outbox_id > max(enqueued, default=0)
        return len(enqueued)


@pytest.mark.slow
def test_kill_9_mid_write_loses_no_committed_row(tmp_path: Path) -> None:
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng = random.Random(seed)
    started = time.monotonic()
    db = tmp_path / "otatui.db"
    for round_ in range(8):
        if round_ % 2 == 0:  # half the rounds on a fresh file, half on the survivor of the last
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
        target = rng.randrange(20, 1500)
        lines: list[str] = []
        with _child(WRITER, str(db), str(seed + round_)) as proc:
            assert proc.stdout is not None
            deadline = time.monotonic() + 10
            while len(lines) < target and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line)
            time.sleep(rng.random() * 0.01)  # land somewhere inside a transaction
            proc.send_signal(signal.SIGKILL)
            rest, err = proc.communicate(timeout=10)
            assert proc.returncode == -signal.SIGKILL, f"writer died on its own: {err}"
        complete = [ln for ln in lines + rest.splitlines(keepends=True) if ln.endswith("\n")]
        assert len(complete) >= target, f"seed {seed}: writer too slow"
        n = _check_after_crash(db, complete)
        assert n > 0
    assert time.monotonic() - started < 20, f"seed {seed}"


@pytest.mark.slow
def test_readers_in_other_processes_while_writing(tmp_path: Path) -> None:
    db = tmp_path / "otatui.db"
    writer = Store.open(db)
    try:
        with (
            _child(READER, str(db), stdin=subprocess.PIPE) as r1,
            _child(READER, str(db), stdin=subprocess.PIPE) as r2,
        ):
            for proc in (r1, r2):
                assert proc.stdout is not None
                assert proc.stdout.readline() == "ready\n"
            waiting: list[int] = []
            end = time.monotonic() + 1.5
            i = 0
            while time.monotonic() < end:
                e = writer.enqueue(
                    device=f"d{i % 3}", resource="otau_in", value=str(i), source="lan"
                )
                writer.add_history(
                    device="d1", direction="local", resource="x", value="", source="l"
                )
                waiting.append(e.outbox_id)
                if len(waiting) >= 8:
                    writer.confirm(waiting[:5])
                    del waiting[:5]
                i += 1
            for proc in (r1, r2):
                out, err = proc.communicate("stop\n", timeout=20)
                assert proc.returncode == 0, err
                assert "locked" not in err
                reads = int(out.split()[-1])
                assert reads > 0
        assert writer.count_pending() == len(waiting)
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        writer.close()


def test_crash_checker_notices_a_lost_row(tmp_path: Path) -> None:
    db = tmp_path / "otatui.db"
    with Store.open(db) as store:
        e = store.enqueue(device="d0", resource="otau_in", value="r", source="serial")
    assert _check_after_crash(db, [f"E {e.outbox_id} {e.history_id}\n"]) == 1
    with pytest.raises(AssertionError, match="lost"):
        _check_after_crash(db, [f"E {e.outbox_id + 7} {e.history_id + 7}\n"])
