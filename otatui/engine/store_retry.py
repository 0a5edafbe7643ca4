"""Retrying a store write that failed (disk full, I/O error): bounded backoff, one error per run.

A write the store refused is not dropped and not retried at once: the caller keeps what it
could not write (in memory) and tries again after a delay that doubles from `base` up to `cap`
(0.5 s, 1 s, 2 s ... 30 s). The technician sees ONE `SessionError` per episode, the first failure
of a run of failures, saying what is held and that it is retried; the episode ends with the
first write that works, after which a new failure is a new episode (and a new error).
"""

from __future__ import annotations

from otatui.engine.events import EventBus, SessionError
from otatui.murano.backoff import Backoff

BASE_S = 0.5
CAP_S = 30.0


class StoreRetry:
    """Delays and the one error of one kind of store write that keeps failing."""

    def __init__(self, *, name: str, bus: EventBus, base: float = BASE_S, cap: float = CAP_S):
        self.name = name
        self.bus = bus
        self._backoff = Backoff(base=base, cap=cap, rng=lambda: 1.0)  # no jitter: a local disk
        self.errors = 0  # errors published (episodes so far)

    @property
    def failing(self) -> bool:
        """In an episode: the last attempt failed."""
        return self._backoff.attempt > 0

    def failed(self, message: str) -> float:
        """Count one failure; publish `message` if it starts an episode. Returns the delay
        before the next attempt."""
        if not self.failing:
            self.errors += 1
            self.bus.publish(SessionError(device=self.name, message=message))
        return self._backoff.next_delay()

    def succeeded(self) -> None:
        """The write worked: the episode (if any) is over."""
        self._backoff.reset()
