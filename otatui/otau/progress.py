"""Rate limiting of progress reports, so `otau_in` is never flooded.

Pure rules, no clock: every call takes `now`, seconds from a monotonic clock of the caller.

DOWNLOAD_STEP (per file, `DownloadLimiter`):
- the first progress of each file always goes out;
- the file's completion (100 %, or a `FileDownloaded`) always goes out, once;
- any other progress goes out only when BOTH at least `min_interval` seconds passed since the
  file's last report AND the percentage grew by at least `min_percent` points since then;
- with an unknown total, only the time condition applies (the message then carries bytes);
- a value with no more bytes than the file's last report never goes out (e.g. 0 bytes again once
  the total is known: it would repeat the same step);
- a suppressed value is kept as the file's pending value: `flush(now)` (driven by the engine's
  `Tick`) sends it once the same conditions hold, so the latest progress is not lost for good.

INSTALL_STEP (`LineLimiter`): at most one report per `install_step_interval` seconds. The first
line goes out; a line arriving too early becomes the pending line (replacing an older pending
one); the next allowed line, or `flush(now)` once the interval passed, carries the latest line.

If `now` goes backwards (the caller's clock was reset) the limiter takes the new `now` as the time
of its last report: nothing goes out early, nothing is blocked forever.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProgressPolicy:
    """How often step reports may go out (seconds and percentage points)."""

    min_interval: float = 2.0
    min_percent: float = 10.0
    install_step_interval: float = 2.0

    def __post_init__(self) -> None:
        for name in ("min_interval", "min_percent", "install_step_interval"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"progress policy: {name} must be a finite number >= 0")


def percent_of(done: int, total: int) -> int:
    """Whole percent done, floored (100 only when complete), clamped to 0..100."""
    if total <= 0 or done >= total:
        return 100
    if done <= 0:
        return 0
    return min(99, done * 100 // total)


@dataclass(frozen=True, slots=True)
class DownloadStep:
    """One DOWNLOAD_STEP that may go out: file `index` (0-based) at `done` of `total` bytes."""

    index: int
    done: int
    total: int | None

    @property
    def percent(self) -> int | None:
        return None if self.total is None else percent_of(self.done, self.total)


@dataclass(slots=True)
class _FileState:
    last_time: float | None = None
    last_percent: int | None = None
    last_done: int = -1
    complete: bool = False
    pending: DownloadStep | None = None


class DownloadLimiter:
    """Decides which download progress values become DOWNLOAD_STEP reports (see module doc)."""

    def __init__(self, policy: ProgressPolicy) -> None:
        self._policy = policy
        self._files: dict[int, _FileState] = {}

    def offer(self, step: DownloadStep, now: float) -> DownloadStep | None:
        """The step to report now, or None (then kept as the file's pending value)."""
        state = self._files.setdefault(step.index, _FileState())
        if state.complete:
            return None
        if self._allowed(state, step, now):
            return self._sent(state, step, now)
        state.pending = step
        return None

    def complete(self, index: int, now: float) -> DownloadStep | None:
        """The file finished: its 100 % step, unless that already went out."""
        state = self._files.setdefault(index, _FileState())
        if state.complete:
            return None
        return self._sent(state, DownloadStep(index, 1, 1), now)

    def flush(self, now: float) -> list[DownloadStep]:
        """Pending values whose time has come, in file order."""
        out: list[DownloadStep] = []
        for index in sorted(self._files):
            state = self._files[index]
            pending = state.pending
            if pending is not None and not state.complete and self._allowed(state, pending, now):
                out.append(self._sent(state, pending, now))
        return out

    def _allowed(self, state: _FileState, step: DownloadStep, now: float) -> bool:
        if state.last_time is None:
            return True
        percent = step.percent
        if percent == 100:
            return True
        if step.done <= state.last_done:  # no new bytes: the same step again says nothing new
            return False
        if now < state.last_time:
            state.last_time = now
            return False
        if now - state.last_time < self._policy.min_interval:
            return False
        if percent is None or state.last_percent is None:
            return True
        return percent - state.last_percent >= self._policy.min_percent

    @staticmethod
    def _sent(state: _FileState, step: DownloadStep, now: float) -> DownloadStep:
        state.last_time = now
        state.last_percent = step.percent
        state.last_done = step.done
        state.pending = None
        state.complete = step.percent == 100
        return step


class LineLimiter:
    """At most one line per interval; the latest suppressed line is kept (see module doc)."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._last_time: float | None = None
        self._pending: str | None = None
        self._latest: str | None = None

    @property
    def latest(self) -> str | None:
        """The last line offered, sent or not."""
        return self._latest

    def offer(self, line: str, now: float) -> str | None:
        """The line to report now, or None (then it is the pending line)."""
        self._latest = line
        if self._due(now):
            return self._sent(line, now)
        self._pending = line
        return None

    def flush(self, now: float) -> str | None:
        """The pending line, if its time has come."""
        if self._pending is not None and self._due(now):
            return self._sent(self._pending, now)
        return None

    def _due(self, now: float) -> bool:
        if self._last_time is None:
            return True
        if now < self._last_time:
            self._last_time = now
            return False
        return now - self._last_time >= self._interval

    def _sent(self, line: str, now: float) -> str:
        self._last_time = now
        self._pending = None
        return line
