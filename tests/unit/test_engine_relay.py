"""The pieces between a link and the session: relay rules (what the cloud gets for each device
report, and the time it keeps), push progress, the apply gate."""

from __future__ import annotations

import asyncio
import json

import pytest

from otatui.engine.events import (
    AwaitingApply,
    Event,
    EventBus,
    LinkChanged,
    TransferFinished,
    TransferProgress,
)
from otatui.engine.gate import ApplyGate
from otatui.engine.jsonlines import event_line
from otatui.engine.push import PushMeter
from otatui.engine.relay import (
    AHEAD_S,
    BEFORE_PUSH_S,
    MESSAGE_LIMIT,
    DeviceClock,
    Relay,
    as_install_step,
    bounded,
    relay_kind,
)
from otatui.links.link import Pushed
from otatui.otau.status import Status, StatusReport


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (Status.INIT, Relay.ONE_FOR_ONE),
        (Status.TEST_STEP, Relay.ONE_FOR_ONE),
        (Status.DOWNLOAD, Relay.ONE_FOR_ONE),
        (Status.DOWNLOAD_STEP, Relay.ONE_FOR_ONE),
        (Status.DOWNLOAD_SUCCESS, Relay.ONE_FOR_ONE),
        (Status.INSTALL, Relay.ONE_FOR_ONE),
        (Status.INSTALL_STEP, Relay.ONE_FOR_ONE),
        (Status.INSTALL_SUCCESS, Relay.SUCCESS),
        (Status.INSTALLED_VERSION, Relay.SUCCESS),
        (Status.TEST_ERROR, Relay.FAILURE),
        (Status.DOWNLOAD_ERROR, Relay.FAILURE),
        (Status.INSTALL_ERROR, Relay.FAILURE),
        (Status.INSTALL_ABORTED, Relay.FAILURE),
    ],
)
def test_relay_kind_of_each_status_of_the_update_version(status: Status, kind: Relay) -> None:
    assert relay_kind(StatusReport("2.0.0", status, "x"), "2.0.0") is kind


def test_a_report_of_another_version_is_not_relayed() -> None:
    report = StatusReport("1.0.0", Status.INSTALLED_VERSION)
    assert relay_kind(report, "2.0.0") is Relay.OTHER_VERSION
    assert relay_kind(StatusReport("1.0.0", Status.INSTALL_ERROR), "2.0.0") is Relay.OTHER_VERSION


@pytest.mark.parametrize(
    ("status", "message", "relayed"),
    [
        (Status.INIT, "manifest accepted", "device INIT: manifest accepted"),
        (Status.TEST, "", "device TEST"),
        (Status.TEST_STEP, "65536 bytes free", "device TEST_STEP: 65536 bytes free"),
        (Status.TEST_SUCCESS, "", "device TEST_SUCCESS"),
        (Status.DOWNLOAD, "2 files", "device DOWNLOAD: 2 files"),
        (Status.DOWNLOAD_STEP, "fw.bin 40%", "device DOWNLOAD_STEP: fw.bin 40%"),
        (Status.DOWNLOAD_SUCCESS, "", "device DOWNLOAD_SUCCESS"),
        (Status.INSTALL, "flashing", "device INSTALL: flashing"),  # otatui said INSTALL already
        (Status.INSTALL_STEP, "writing bank B", "writing bank B"),  # the device's own: as it is
    ],
)
def test_a_non_final_device_report_is_relayed_as_an_install_step(
    status: Status, message: str, relayed: str
) -> None:
    assert as_install_step(StatusReport("2.0.0", status, message)) == StatusReport(
        "2.0.0", Status.INSTALL_STEP, relayed
    )


def test_relayed_messages_are_cut_to_a_sane_length() -> None:
    long = "x" * 5000
    step = as_install_step(StatusReport("2.0.0", Status.DOWNLOAD_STEP, long))
    assert len(step.message) == MESSAGE_LIMIT
    assert step.message.startswith("device DOWNLOAD_STEP: xxx") and step.message.endswith("…")
    own = as_install_step(StatusReport("2.0.0", Status.INSTALL_STEP, long))
    assert len(own.message) == MESSAGE_LIMIT
    error = bounded(StatusReport("2.0.0", Status.INSTALL_ERROR, long))
    assert error.status is Status.INSTALL_ERROR and len(error.message) == MESSAGE_LIMIT
    fits = StatusReport("2.0.0", Status.INSTALL_STEP, "x" * MESSAGE_LIMIT)
    assert as_install_step(fits) is fits and bounded(fits) is fits


T0 = 1_764_252_000.0  # the push started


def test_a_plausible_device_time_is_kept() -> None:
    clock = DeviceClock(push_started=T0)
    first = clock.time_of(T0 + 0.5, arrived=T0 + 0.6)
    assert (first.at, first.from_device, first.why) == (T0 + 0.5, True, "")
    # A clock a little behind (made "before" the push) or a little ahead: still the device's.
    behind = DeviceClock(push_started=T0).time_of(T0 - BEFORE_PUSH_S, arrived=T0 + 0.1)
    assert behind.from_device and behind.at == T0 - BEFORE_PUSH_S
    ahead = DeviceClock(push_started=T0).time_of(T0 + 1 + AHEAD_S, arrived=T0 + 1)
    assert ahead.from_device and ahead.at == T0 + 1 + AHEAD_S
    # The same time as the previous report is in order.
    same = clock.time_of(T0 + 0.5, arrived=T0 + 0.7)
    assert same.from_device and same.at == T0 + 0.5


@pytest.mark.parametrize(
    ("said", "why"),
    [
        (T0 + 2 + AHEAD_S + 0.01, "later than it reached otatui"),  # in the future
        (1000.0, "1970-01-01 00:16:40.000 UTC, before the push started"),  # no real clock
        (T0 - BEFORE_PUSH_S - 0.01, "before the push started"),
        (float("nan"), "nan is no time"),
        (float("inf"), "inf is no time"),
        (-1.0, "-1.0 is no time"),
    ],
)
def test_an_implausible_device_time_gives_way_to_the_arrival_time(said: float, why: str) -> None:
    kept = DeviceClock(push_started=T0).time_of(said, arrived=T0 + 2)
    assert (kept.at, kept.from_device) == (T0 + 2, False)
    assert why in kept.why


def test_a_device_time_before_the_previous_report_gives_way_to_the_arrival_time() -> None:
    clock = DeviceClock(push_started=T0)
    assert clock.time_of(T0 + 3, arrived=T0 + 1).at == T0 + 3  # a clock 2 s ahead
    back = clock.time_of(T0 + 2.5, arrived=T0 + 4)  # earlier than the previous report
    assert (back.at, back.from_device) == (T0 + 4, False)
    assert "before the previous report" in back.why
    # The next one is compared with what was kept (the arrival time), so order holds.
    assert not clock.time_of(T0 + 3.9, arrived=T0 + 5).from_device
    assert clock.time_of(T0 + 5.5, arrived=T0 + 6).at == T0 + 5.5
    assert clock.refused == 2


def test_a_report_without_a_time_keeps_its_arrival_time_without_a_reason() -> None:
    clock = DeviceClock(push_started=T0)
    kept = clock.time_of(None, arrived=T0 + 1)
    assert (kept.at, kept.from_device, kept.why) == (T0 + 1, False, "")
    assert clock.refused == 0 and clock.previous == T0 + 1


def pushed(done: int, total: int = 1000, index: int = 0, name: str = "fw.bin") -> Pushed:
    return Pushed(file=name, index=index, count=2, done=done, total=total)


def test_push_meter_progress_rate_finish_and_tenths() -> None:
    meter = PushMeter("sensor-1")
    lines: list[str | None] = []
    events: list[Event] = []
    for t, done in ((0.0, 0), (1.0, 100), (2.0, 250), (3.0, 260), (4.0, 1000), (5.0, 1000)):
        out, line = meter.update(pushed(done), t)
        events += out
        lines.append(line)
    progress = [e for e in events if isinstance(e, TransferProgress)]
    assert all(p.direction == "push" and p.device == "sensor-1" for p in progress)
    assert [p.done for p in progress] == [0, 100, 250, 260, 1000, 1000]
    assert progress[0].rate == 0 and progress[1].rate == pytest.approx(100)
    assert progress[2].rate == pytest.approx(0.3 * 150 + 0.7 * 100)
    finished = [e for e in events if isinstance(e, TransferFinished)]
    assert len(finished) == 1  # once, although 1000/1000 came twice
    assert (finished[0].direction, finished[0].ok, finished[0].size) == ("push", True, 1000)
    # One line per new tenth: 0%, 10%, 20%, (nothing for 26%), 100%, (nothing again).
    assert lines == [
        "pushing file 1 of 2, 0% (fw.bin)",
        "pushing file 1 of 2, 10% (fw.bin)",
        "pushing file 1 of 2, 20% (fw.bin)",
        None,
        "pushing file 1 of 2, 100% (fw.bin)",
        None,
    ]
    assert meter.unfinished() == []
    meter.update(pushed(10, index=1, name="b.bin"), 6.0)
    assert meter.unfinished() == ["b.bin"]


def test_push_meter_empty_file_is_complete_at_once() -> None:
    out, line = PushMeter("d").update(pushed(0, total=0), 1.0)
    assert any(isinstance(e, TransferFinished) for e in out)
    assert line == "pushing file 1 of 2, 100% (fw.bin)"


def test_new_events_are_json_lines_ready() -> None:
    line = json.loads(
        event_line(LinkChanged(device="s", time=1.0, link="serial", state="lost", detail="gone"))
    )
    assert line == {
        "time": 1.0, "device": "s", "event": "link", "link": "serial", "state": "lost",
        "detail": "gone",
    }  # fmt: skip
    line = json.loads(event_line(AwaitingApply(device="s", time=2.0, version="2.1.0")))
    assert line == {"time": 2.0, "device": "s", "event": "awaiting_apply", "version": "2.1.0"}


async def test_apply_gate_auto_never_waits() -> None:
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append)
    gate = ApplyGate("auto", device="d", bus=bus)
    await asyncio.wait_for(gate.wait("2.0.0"), 1)
    assert seen == [] and gate.waiting is None and not gate.release()


async def test_apply_gate_confirm_waits_until_released() -> None:
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append)
    gate = ApplyGate("confirm", device="d", bus=bus)
    assert not gate.release()  # nothing waits yet: an early apply does not pre-approve
    task = asyncio.create_task(gate.wait("2.0.0"))
    await asyncio.sleep(0.01)
    assert not task.done() and gate.waiting == "2.0.0"
    assert [(type(e), getattr(e, "version", None)) for e in seen] == [(AwaitingApply, "2.0.0")]
    assert gate.release()
    await asyncio.wait_for(task, 1)
    assert gate.waiting is None


async def test_apply_gate_wait_ends_on_cancel() -> None:
    gate = ApplyGate("confirm", device="d", bus=EventBus())
    task = asyncio.create_task(gate.wait("2.0.0"))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gate.waiting is None and not gate.release()
