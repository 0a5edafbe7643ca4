"""Activation of a device without a token, the engine in-process against the local connector:
transient failures (a refused connection, HTTP 5xx) are retried with backoff and shown with their
reason and next attempt; the connector's refusals (404, 403, 409) are final, in one clear line."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from engine_helpers import agent, wait_status
from fault_helpers import eventually, site_config

from otatui.config import load_config
from otatui.connector import Connector
from otatui.engine.events import ConnectionChanged, Event, EventBus, SessionError
from otatui.engine.fleet import Fleet
from otatui.murano.backoff import Backoff

OK = "INSTALLED_VERSION"


def fresh_device(tmp_path: Path, identity: str) -> dict[str, object]:
    device = agent("gw", "a0002", "http", tmp_path / "records")
    device["identity"] = identity
    del device["token"]
    return device


@contextlib.asynccontextmanager
async def fleet_of(config: Path) -> AsyncIterator[list[Event]]:
    seen: list[Event] = []
    bus = EventBus()
    bus.subscribe(seen.append)
    fast = Backoff(base=0.2, cap=0.4)
    async with Fleet(load_config(config), bus=bus, request_timeout_ms=5_000, backoff=fast) as f:
        f.start()
        yield seen


def states(seen: list[Event], state: str) -> list[ConnectionChanged]:
    return [e for e in seen if isinstance(e, ConnectionChanged) and e.state == state]


async def test_activation_waits_for_a_connector_that_refuses_connections(tmp_path: Path) -> None:
    first = Connector(devices=[("fresh-1", None)])
    await first.start()
    config = site_config(tmp_path, first, [fresh_device(tmp_path, "fresh-1")])
    ports = dict(first.ports)
    await first.stop()  # nothing listens there now: connections are refused
    async with fleet_of(config) as seen:
        await eventually(lambda: len(states(seen, "backoff")) >= 2, 10, "two retries shown")
        waiting = states(seen, "backoff")
        assert all("cannot reach the connector" in e.reason for e in waiting), waiting
        assert all(e.retry_at is not None and e.retry_at >= e.time for e in waiting)
        assert [e.attempt for e in waiting[:2]] == [1, 2]
        assert states(seen, "stopped") == []
        async with Connector(
            http_port=ports["http"], mqtt_port=ports["mqtt"], devices=[("fresh-1", None)]
        ) as connector:
            await wait_status(connector, "fresh-1", "1.0.0", OK, timeout=10)
    assert (tmp_path / "data" / "tokens" / "fresh-1").is_file()
    assert [e for e in seen if isinstance(e, SessionError)] == []


async def test_a_burst_of_503_during_activation_is_shown_and_retried(tmp_path: Path) -> None:
    async with Connector(devices=[("fresh-2", None)]) as connector:
        connector.faults.fail_next(3, status=503, path="/provision/activate")
        config = site_config(tmp_path, connector, [fresh_device(tmp_path, "fresh-2")])
        async with fleet_of(config) as seen:
            await wait_status(connector, "fresh-2", "1.0.0", OK, timeout=10)
        assert connector.faults.fail_count == 0
    waiting = states(seen, "backoff")
    assert [e.reason for e in waiting] == ["activation of fresh-2 failed: HTTP 503"] * 3
    assert states(seen, "connecting")[0].reason == "activating identity fresh-2"


async def test_an_identity_the_connector_refuses_is_final_in_one_line(tmp_path: Path) -> None:
    async with Connector(devices=[("fresh-3", None)]) as connector:
        device = fresh_device(tmp_path, "not-listed")
        async with fleet_of(site_config(tmp_path, connector, [device])) as seen:
            await eventually(lambda: bool(states(seen, "stopped")), 10, "the device stopped")
            await asyncio.sleep(0.6)  # no retry comes
        (stopped,) = states(seen, "stopped")
        assert stopped.reason == "identity not-listed is not whitelisted on the connector"
        assert states(seen, "backoff") == []
        errors = [e.message for e in seen if isinstance(e, SessionError)]
        assert errors == [stopped.reason]
