"""The apply gate: with `apply = "confirm"` an update waits for the technician before installing.

The session holds back the event that would start the install (or the push to a bridged device):
the end of the download, or the end of the checks for an update without files. The update machine
therefore stays in its phase (DOWNLOADING with every file done, or TESTING) while it waits, so a
restart resumes exactly there: the files are found in the cache again and the gate waits again
(nothing was installed, and nothing claims it was). `AwaitingApply` is published when the wait
begins; `release()` (Fleet.apply) lets it go on; a cancel aborts the job that waits, which ends
in INSTALL_ABORTED as usual.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from otatui.engine.events import AwaitingApply, EventBus

ApplyMode = Literal["auto", "confirm"]


class ApplyGate:
    def __init__(self, mode: ApplyMode, *, device: str, bus: EventBus) -> None:
        self.mode = mode
        self.device = device
        self.bus = bus
        self._release: asyncio.Event | None = None
        self._version: str | None = None

    @property
    def waiting(self) -> str | None:
        """The version waiting to be applied, or None."""
        return self._version

    async def wait(self, version: str) -> None:
        """Return at once in "auto" mode; else when released (cancellation ends the wait)."""
        if self.mode == "auto":
            return
        release = self._release = asyncio.Event()
        self._version = version
        self.bus.publish(AwaitingApply(device=self.device, version=version))
        try:
            await release.wait()
        finally:
            if self._release is release:
                self._release, self._version = None, None

    def release(self) -> bool:
        """Let the waiting update go on; False when nothing waits."""
        if self._release is None:
            return False
        self._release.set()
        return True
