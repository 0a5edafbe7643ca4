"""The recorder when the store cannot record a step (disk full): the step is held in memory, in
order, written later with backoff; one error; bounded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from otatui.engine.events import Event, EventBus, ReportQueued, SessionError
from otatui.engine.recorder import Recorder
from otatui.otau.status import Status, StatusReport
from otatui.store import Store, StoreError


class FlakyStore(Store):
    """A real store whose `record_step` fails `failures` more times (disk full)."""

    failures = 0
    attempts = 0

    def record_step(self, **kwargs):  # type: ignore[no-untyped-def,override]
        self.attempts += 1
        if self.failures > 0:
            self.failures -= 1
            raise StoreError(
                "store otatui.db: record session step failed: database or disk is full"
            )
        return super().record_step(**kwargs)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FlakyStore]:
    s = FlakyStore.open(tmp_path / "otatui.db")
    try:
        yield s
    finally:
        s.close()


def recorder(store: Store, seen: list[Event], *, max_held: int = 1000) -> Recorder:
    bus = EventBus()
    bus.subscribe(seen.append)
    clock = iter(range(1000, 100_000))
    return Recorder(
        name="gw",
        store=store,
        bus=bus,
        clock=lambda: float(next(clock)),
        recorded=lambda: None,
        max_held=max_held,
    )


def report(status: Status, message: str = "") -> StatusReport:
    return StatusReport("2.0.0", status, message)


def outbox(store: Store) -> list[tuple[str, float]]:
    return [(json.loads(i.value)["status"], i.produced_at) for i in store.pending("gw", limit=1000)]


async def test_a_step_the_store_cannot_record_is_held_and_written_in_order(
    store: FlakyStore,
) -> None:
    seen: list[Event] = []
    rec = recorder(store, seen)
    store.failures = 3  # the first attempt and two retries fail, the third retry works
    rec.record([report(Status.INIT)], {"n": 1}, source="mqtt", protocol="mqtt")
    rec.record([], {"n": 2}, source="mqtt", protocol="mqtt")  # a new state only
    rec.record(
        [report(Status.TEST), report(Status.TEST_SUCCESS)], {"n": 3}, source="mqtt", protocol="mqtt"
    )
    assert rec.held == 3 and outbox(store) == []
    assert rec.last_report == ("2.0.0", "TEST_SUCCESS", "")  # what the machine did
    async with asyncio.timeout(5):
        while rec.held:
            await asyncio.sleep(0.05)
    assert store.attempts == 3 + 2  # 3 failures, then the 2 held steps (one merged away)
    assert outbox(store) == [("INIT", 1000.0), ("TEST", 1002.0), ("TEST_SUCCESS", 1002.0)]
    saved = store.get_session("gw")
    assert saved is not None and json.loads(saved.snapshot) == {"n": 3}
    errors = [e.message for e in seen if isinstance(e, SessionError)]
    assert len(errors) == 1 and "database or disk is full" in errors[0], errors
    assert "held in memory" in errors[0] and "\n" not in errors[0]
    queued = [e.status for e in seen if isinstance(e, ReportQueued)]
    assert queued == ["INIT", "TEST", "TEST_SUCCESS"]
    # Back to normal: the next step is written at once.
    rec.record([report(Status.DOWNLOAD)], {"n": 4}, source="mqtt", protocol="mqtt")
    assert [s for s, _ in outbox(store)][-1] == "DOWNLOAD" and rec.held == 0
    await rec.aclose()


async def test_held_reports_are_bounded_progress_dropped_first(store: FlakyStore) -> None:
    seen: list[Event] = []
    rec = recorder(store, seen, max_held=4)
    store.failures = 1_000
    rec.record([report(Status.DOWNLOAD)], {"n": 1}, source="mqtt", protocol="mqtt")
    for i in range(5):
        step = report(Status.DOWNLOAD_STEP, f"1/1 {i * 20}%")
        rec.record([step], {"n": 2 + i}, source="mqtt", protocol="mqtt")
    rec.record([report(Status.DOWNLOAD_SUCCESS)], {"n": 9}, source="mqtt", protocol="mqtt")
    assert rec.held == 4 and rec.dropped == 3
    errors = [e.message for e in seen if isinstance(e, SessionError)]
    assert len(errors) == 2 and "more than 4 reports" in errors[1], errors
    store.failures = 0
    await rec.aclose()  # the session stops: what is held is written one last time
    assert [s for s, _ in outbox(store)] == [
        "DOWNLOAD",
        "DOWNLOAD_STEP",
        "DOWNLOAD_STEP",
        "DOWNLOAD_SUCCESS",
    ]
    assert [json.loads(i.value)["message"] for i in store.pending("gw")][1:3] == [
        "1/1 60%",
        "1/1 80%",
    ]
    saved = store.get_session("gw")
    assert saved is not None and json.loads(saved.snapshot) == {"n": 9}


async def test_reports_still_held_when_the_session_stops_are_said_to_be_lost(
    store: FlakyStore,
) -> None:
    seen: list[Event] = []
    rec = recorder(store, seen)
    store.failures = 1_000
    rec.record([report(Status.INIT)], {"n": 1}, source="mqtt", protocol="mqtt")
    await rec.aclose()
    errors = [e.message for e in seen if isinstance(e, SessionError)]
    assert len(errors) == 2 and "lost: 1 report made while the store failed" in errors[1]
    assert rec.held == 0
