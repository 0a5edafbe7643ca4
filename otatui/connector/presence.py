"""Whether a device is at the connector: seen (authenticated or activated) and MQTT sessions.

HTTP has no connection to watch: a request carrying the device's token is its sign of life, so
every successful authentication and every activation records the device as *seen* at that time.
An MQTT session counts as *connected* while it is registered (`session_opened` ..
`session_closed`). Every change sets the identity's presence event, which is replaced each time
(take it before checking, then wait). It is separate from the device's change event on purpose:
a long poll authenticates each time it wakes, and waking it for its own authentication would
loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Presence:
    """Sign-of-life times and open MQTT sessions, by identity."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._seen: dict[str, float] = {}
        self._sessions: dict[str, int] = {}
        self._events: dict[str, asyncio.Event] = {}

    def seen(self, identity: str) -> None:
        """The device just authenticated or activated."""
        self._seen[identity] = self.clock()
        self.changed(identity)

    def session_opened(self, identity: str) -> None:
        self._sessions[identity] = self._sessions.get(identity, 0) + 1
        self.changed(identity)

    def session_closed(self, identity: str) -> None:
        left = self._sessions.get(identity, 0) - 1
        if left > 0:
            self._sessions[identity] = left
        else:
            self._sessions.pop(identity, None)
        self.changed(identity)

    def last_seen(self, identity: str) -> float | None:
        """When the device was last seen (clock time), None if never."""
        return self._seen.get(identity)

    def in_session(self, identity: str) -> bool:
        """Whether an MQTT session of the device is open."""
        return identity in self._sessions

    def event(self, identity: str) -> asyncio.Event:
        """An event set at the identity's next presence change."""
        event = self._events.get(identity)
        if event is None:
            event = self._events[identity] = asyncio.Event()
        return event

    def changed(self, identity: str) -> None:
        event = self._events.pop(identity, None)
        if event is not None:
            event.set()
