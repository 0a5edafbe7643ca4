"""A device token the connector refuses (MQTT CONNACK 5, HTTP 401), the engine in-process against
the local connector: the device ends in `auth_failed` (not `stopped`), with one line that says the
token was refused and never shows it, and that line is not repeated in a second state event."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from engine_helpers import TOKENS, agent
from fault_helpers import eventually, site_config

from otatui.config import load_config
from otatui.connector import Connector
from otatui.engine.events import ConnectionChanged, Event, EventBus, SessionError
from otatui.engine.fleet import Fleet
from otatui.murano.channel import AuthError, ChannelError

WRONG = "Wr0ngTokenWr0ngTokenWr0ngTokenWr0ngToken"


def changes(seen: list[Event]) -> list[ConnectionChanged]:
    return [e for e in seen if isinstance(e, ConnectionChanged) and e.device == "gw"]


@pytest.mark.parametrize("protocol", ["mqtt", "http"])
async def test_a_refused_token_ends_in_auth_failed_not_stopped(tmp_path: Path, protocol: str):
    async with Connector(devices=[("a0001", TOKENS["a0001"])]) as connector:
        device = agent("gw", "a0001", protocol, tmp_path / "records")
        device["token"] = WRONG
        config = load_config(site_config(tmp_path, connector, [device]))
        seen: list[Event] = []
        bus = EventBus()
        bus.subscribe(seen.append)
        async with Fleet(config, bus=bus, request_timeout_ms=5_000) as fleet:
            fleet.start()
            await eventually(
                lambda: any(e.state == "auth_failed" for e in changes(seen)), 10, "auth_failed"
            )
            await asyncio.sleep(0.5)  # whatever the error path publishes after it
            task = fleet._tasks["gw"]
            await eventually(task.done, 10, "the device's task ended")
    last = changes(seen)[-1]
    assert last.state == "auth_failed", [(e.state, e.reason) for e in changes(seen)]
    assert "refused the device token" in last.reason, last.reason
    reasons = [e.reason for e in changes(seen) if e.reason == last.reason]
    errors = [e.message for e in seen if isinstance(e, SessionError) and e.device == "gw"]
    assert len(reasons) + errors.count(last.reason) == 1, (reasons, errors)
    for event in seen:
        assert WRONG not in str(event.to_dict())


async def test_an_auth_error_the_channel_did_not_show_still_ends_in_auth_failed(tmp_path: Path):
    """E.g. the token refused by a read outside the channel: one error, then `auth_failed`; any
    other final error ends in `stopped`."""
    async with Connector(devices=[("a0001", TOKENS["a0001"])]) as connector:
        device = agent("gw", "a0001", "http", tmp_path / "records")
        config = load_config(site_config(tmp_path, connector, [device]))
    seen: list[Event] = []
    fleet = Fleet(config, bus=EventBus())
    fleet.bus.subscribe(seen.append)
    handle = fleet.devices["gw"]
    fleet._ended(handle, AuthError("the connector refused the device token (HTTP 401)"), None)
    fleet._ended(handle, ChannelError("identity a0001 is not whitelisted on the connector"), None)
    assert [(type(e).__name__, getattr(e, "state", "")) for e in seen] == [
        ("SessionError", ""),
        ("ConnectionChanged", "auth_failed"),
        ("SessionError", ""),
        ("ConnectionChanged", "stopped"),
    ]
    assert handle.error == "identity a0001 is not whitelisted on the connector"
