"""Engine events: the bus, coalescing queues and the JSON-lines printer."""

from __future__ import annotations

import asyncio
import io
import json

from otatui.engine.events import (
    ConnectionChanged,
    EventBus,
    EventQueue,
    ReportQueued,
    SessionError,
    TransferProgress,
)
from otatui.engine.jsonlines import JsonLinesPrinter, event_line


def progress(done: int, file: str = "fw.bin", device: str = "pump-7") -> TransferProgress:
    return TransferProgress(
        device=device, time=1.0, file=file, index=0, count=1, done=done, total=100, rate=1.0
    )


def test_queue_coalesces_progress_but_keeps_order_and_latest_value() -> None:
    q = EventQueue()
    first = ReportQueued(device="d", outbox_id=1, version="2", status="DOWNLOAD")
    q.put(first)
    for done in range(10):
        q.put(progress(done))
    q.put(progress(5, file="other.bin"))
    last = ReportQueued(device="d", outbox_id=2, version="2", status="DOWNLOAD_SUCCESS")
    q.put(last)
    events = q.drain()
    assert events[0] is first and events[-1] is last
    prog = [e for e in events if isinstance(e, TransferProgress)]
    assert [(p.file, p.done) for p in prog] == [("fw.bin", 9), ("other.bin", 5)]
    assert len(q) == 0


def test_non_progress_events_are_never_dropped() -> None:
    q = EventQueue()
    for i in range(1000):
        q.put(SessionError(device="d", message=str(i)))
    assert [e.message for e in q.drain() if isinstance(e, SessionError)] == [
        str(i) for i in range(1000)
    ]


def test_event_line_has_time_device_event_and_fields() -> None:
    event = ConnectionChanged(
        device="pump-7",
        time=12.5,
        protocol="mqtt",
        state="backoff",
        reason="refused",
        retry_at=20.0,
    )
    data = json.loads(event_line(event))
    assert data == {
        "time": 12.5,
        "device": "pump-7",
        "event": "connection",
        "protocol": "mqtt",
        "state": "backoff",
        "reason": "refused",
        "retry_at": 20.0,
        "attempt": 0,
    }


def test_event_line_redacts_secrets() -> None:
    token = "Ed9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK9y"
    line = event_line(SessionError(device="d", message=f"bad {token}"), [token])
    assert token not in line and "***" in line


async def test_printer_writes_each_event_on_its_own_line() -> None:
    bus = EventBus()
    out = io.StringIO()
    printer = JsonLinesPrinter(bus, out, secrets=["s3cret"])
    printer.start()
    bus.publish(SessionError(device="a", message="one"))
    await asyncio.sleep(0)
    bus.publish(SessionError(device="b", message="two s3cret"))
    await printer.stop()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(x["device"], x["message"]) for x in lines] == [("a", "one"), ("b", "two ***")]
    bus.publish(SessionError(device="c", message="after stop"))
    assert "after stop" not in out.getvalue()
