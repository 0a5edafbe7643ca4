"""Exponential backoff with full jitter, bounded, for reconnecting to the connector.

The delay before attempt *n* (1-based count of consecutive failures) is drawn uniformly from
``[0, min(cap, base * 2 ** (n - 1))]`` ("full jitter"): a fleet that lost the connector at the
same moment does not come back in lock-step, and the wait never exceeds `cap`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Delays for consecutive failures; `reset()` after a success."""

    base: float = 1.0
    cap: float = 60.0
    rng: Callable[[], float] = field(default=random.random, repr=False)
    attempt: int = 0  # consecutive failures so far

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError("backoff needs 0 < base <= cap")

    def ceiling(self, attempt: int) -> float:
        """The largest delay for the given (1-based) failure count."""
        # 2 ** 64 already dwarfs any cap; avoid computing huge powers.
        return min(self.cap, self.base * 2.0 ** min(max(attempt - 1, 0), 64))

    def next_delay(self) -> float:
        """Count one more failure and return how long to wait before the next attempt."""
        self.attempt += 1
        return self.rng() * self.ceiling(self.attempt)

    def reset(self) -> None:
        self.attempt = 0

    def fresh(self) -> Backoff:
        """An independent copy with the same settings and no failures counted."""
        return Backoff(base=self.base, cap=self.cap, rng=self.rng)
