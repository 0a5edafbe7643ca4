"""The local connector's presence model, which the LAN link waits on: seen times, MQTT sessions,
the presence event, and the Application's view of them."""

from __future__ import annotations

import asyncio

from otatui.connector import Connector
from otatui.connector.presence import Presence


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_seen_records_the_time_and_sets_the_event_once() -> None:
    clock = Clock()
    presence = Presence(clock)
    assert presence.last_seen("d") is None
    event = presence.event("d")
    assert presence.event("d") is event  # the same until it is set
    clock.now = 1234.5
    presence.seen("d")
    assert event.is_set() and presence.last_seen("d") == 1234.5
    assert not presence.event("d").is_set()  # a fresh one for the next change
    assert presence.last_seen("other") is None


async def test_sessions_are_counted() -> None:
    presence = Presence()
    event = presence.event("d")
    presence.session_opened("d")
    presence.session_opened("d")  # a new connection takes over before the old one is gone
    assert event.is_set() and presence.in_session("d")
    presence.session_closed("d")
    assert presence.in_session("d")
    presence.session_closed("d")
    assert not presence.in_session("d")
    presence.session_closed("d")  # never negative
    presence.session_opened("d")
    assert presence.in_session("d")


async def test_application_view_of_authentication_activation_and_sessions() -> None:
    connector = Connector(http_port=None, mqtt_port=None)
    try:
        connector.add_device("d")
        before = connector.state.clock()
        assert not connector.seen_since("d", before)
        event = connector.presence_event("d")
        token = connector.state.activate("d")  # activation is a sign of life
        assert event.is_set() and connector.seen_since("d", before)
        later = connector.state.clock() + 10
        assert not connector.seen_since("d", later)
        assert connector.state.authenticate("wrong") is None
        assert connector.last_seen("d") is not None and connector.last_seen("d") < later
        with connector.state.pushing("d", lambda _r: None):
            assert connector.is_connected("d") and connector.seen_since("d", later)
        assert not connector.is_connected("d")
        assert connector.state.authenticate(token) is not None
        # The presence event never wakes the device's change waiters (long polls).
        changed = connector.change_event("d")
        connector.state.authenticate(token)
        await asyncio.sleep(0)
        assert not changed.is_set()
    finally:
        await connector.stop()


async def test_next_report_reads_every_report_once_in_order_however_fast() -> None:
    connector = Connector(http_port=None, mqtt_port=None)
    try:
        connector.add_device("d")
        token = connector.state.activate("d")
        device = connector.state.authenticate(token)
        assert device is not None
        start = connector.report_count("d")
        got: list[str] = []

        async def reader() -> None:
            index = start
            while len(got) < 50:
                report = await connector.next_report("d", index)
                got.append(report.value)
                index += 1

        task = asyncio.create_task(reader())
        await asyncio.sleep(0)
        for i in range(25):  # two bursts, each written without yielding to the reader
            connector.state.device_write(device, [("otau_in", str(i))], via="http")
        await asyncio.sleep(0.01)
        connector.state.device_record(
            device, [("otau_in", 2e9 + i, str(i)) for i in range(25, 50)], via="http-record"
        )
        await asyncio.wait_for(task, 5)
        assert got == [str(i) for i in range(50)]
        assert connector.report_count("d") == start + 50
    finally:
        await connector.stop()
