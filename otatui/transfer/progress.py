"""What a download reports while it runs, and what it hands over when it is done."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RATE_SMOOTHING = 0.3
"""Weight of the newest sample in the exponentially smoothed rate."""
MIN_SAMPLE_S = 0.05


@dataclass(frozen=True, slots=True)
class CachedFile:
    """A verified file in the content-addressed cache (read-only: link or copy it, never edit)."""

    path: Path
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Progress:
    """Bytes on hand so far, the expected total (``None`` while unknown) and a smoothed rate.

    The last ``Progress`` of a download carries ``result``; every earlier one has ``None``.
    ``resumed`` counts how many times this download continued with ``Range`` after a cut (a
    dropped connection, or an earlier run that stopped mid-file), ``resumed_at`` is the byte
    offset the last of them continued from (``None`` before any); a restart from zero is not
    a resume.
    """

    done: int
    total: int | None
    rate_bytes_per_s: float
    result: CachedFile | None = None
    resumed: int = 0
    resumed_at: int | None = None


class RateMeter:
    """Exponentially smoothed transfer rate from (time, bytes done) samples."""

    def __init__(self, now: float, done: int) -> None:
        self._time = now
        self._done = done
        self.rate = 0.0

    def sample(self, now: float, done: int) -> float:
        elapsed = now - self._time
        if elapsed < MIN_SAMPLE_S:
            return self.rate
        current = max(0, done - self._done) / elapsed
        self.rate = (
            current
            if self.rate == 0.0
            else (RATE_SMOOTHING * current + (1 - RATE_SMOOTHING) * self.rate)
        )
        self._time, self._done = now, done
        return self.rate

    def rebase(self, now: float, done: int) -> None:
        """Continue from ``done`` (after a restart from zero or a resume) without a fake spike."""
        self._time, self._done = now, done
