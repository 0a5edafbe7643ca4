"""What the local-link tests (serial, LAN) do with a link's events: collect them from
`install()` within a bound, and pick out the Finished, the device's reports, the link states
and the push progress."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

from otatui.links.link import (
    DeviceReport,
    Finished,
    InstallEvent,
    InstallRequest,
    Link,
    LinkStatus,
    Pushed,
)


async def collect(
    link: Link,
    request: InstallRequest,
    within: float = 60.0,
    stop: Callable[[InstallEvent], bool] | None = None,
) -> list[InstallEvent]:
    """The link's events until it finishes (or `stop` says so: the install is then closed)."""
    events: list[InstallEvent] = []
    async with asyncio.timeout(within), contextlib.aclosing(link.install(request)) as stream:
        async for event in stream:
            events.append(event)
            if stop is not None and stop(event):
                break
    return events


def finished(events: Sequence[InstallEvent]) -> Finished:
    """The one Finished, which must be the last event."""
    ends = [e for e in events if isinstance(e, Finished)]
    assert len(ends) == 1, events
    assert events[-1] is ends[0], "Finished must be the last event"
    return ends[0]


def reports(events: Sequence[InstallEvent]) -> list[str]:
    return [e.report.status.value for e in events if isinstance(e, DeviceReport)]


def states(events: Sequence[InstallEvent]) -> list[str]:
    return [e.state for e in events if isinstance(e, LinkStatus)]


def pushed(events: Sequence[InstallEvent]) -> list[Pushed]:
    return [e for e in events if isinstance(e, Pushed)]
