"""The push of payload files over a link, as the technician and the cloud see it.

A link reports `Pushed(file, index, count, done, total)` while it sends the files to the device.
`PushMeter` turns each into a `TransferProgress(direction="push")` with a smoothed rate, a
`TransferFinished(direction="push")` once a file is complete, and, at every tenth of a file
(and at its end), a progress line for the update machine (an INSTALL_STEP, rate-limited by the
machine): a serial device cannot report while YMODEM holds the line, so the cloud still sees the
push advance.
"""

from __future__ import annotations

from dataclasses import dataclass

from otatui.engine.events import Event, TransferFinished, TransferProgress
from otatui.links.link import Pushed

SMOOTHING = 0.3  # weight of the newest rate sample


@dataclass
class _File:
    name: str
    done: int = 0
    at: float = 0.0
    rate: float = 0.0
    tenth: int = -1
    finished: bool = False


class PushMeter:
    """Progress of one push (one install request)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._files: dict[int, _File] = {}

    def update(self, pushed: Pushed, now: float) -> tuple[list[Event], str | None]:
        """The events to publish for `pushed`, and a progress line for the machine (or None)."""
        state = self._files.get(pushed.index)
        if state is None:
            state = self._files[pushed.index] = _File(name=pushed.file, at=now)
        elif now > state.at and pushed.done >= state.done:
            sample = (pushed.done - state.done) / (now - state.at)
            state.rate = (
                sample if state.rate == 0 else (SMOOTHING * sample + (1 - SMOOTHING) * state.rate)
            )
        if now > state.at or pushed.done != state.done:
            state.done, state.at = pushed.done, now
        events: list[Event] = [
            TransferProgress(
                device=self.device,
                time=now,
                file=pushed.file,
                index=pushed.index,
                count=pushed.count,
                done=pushed.done,
                total=pushed.total,
                rate=state.rate,
                direction="push",
            )
        ]
        complete = pushed.done >= pushed.total
        if complete and not state.finished:
            state.finished = True
            events.append(
                TransferFinished(
                    device=self.device,
                    time=now,
                    file=pushed.file,
                    ok=True,
                    size=pushed.total,
                    direction="push",
                )
            )
        line = None
        tenth = 10 if complete else (pushed.done * 10 // pushed.total if pushed.total > 0 else 0)
        if tenth > state.tenth:
            state.tenth = tenth
            percent = 100 if complete else tenth * 10
            line = f"pushing file {pushed.index + 1} of {pushed.count}, {percent}% ({pushed.file})"
        return events, line

    def unfinished(self) -> list[str]:
        """Names of the files whose push started but did not complete."""
        return [f.name for f in self._files.values() if not f.finished]
