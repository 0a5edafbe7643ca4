"""What the update machine asks the session engine to do, in order (`UpdateMachine.handle`).

The engine carries them out one after the other: `Acknowledge` and `Report` values are written
(reports through the outbox), the `Start*` actions launch work whose results come back as events
tagged with the action's `job` number, `Abort` stops that work.
"""

from __future__ import annotations

from dataclasses import dataclass

from otatui.otau.manifest import Manifest
from otatui.otau.status import StatusReport


@dataclass(frozen=True, slots=True)
class Acknowledge:
    """Echo the identical `config_otau` value back (always first for every received manifest)."""

    raw: str


@dataclass(frozen=True, slots=True)
class Report:
    """Write this `otau_in` report (through the outbox)."""

    report: StatusReport


@dataclass(frozen=True, slots=True)
class RunChecks:
    """Run the test-phase checks for the manifest; answer with TestStep*/TestResult."""

    manifest: Manifest
    job: int


@dataclass(frozen=True, slots=True)
class StartDownload:
    """Download (or resume downloading) the payload; `files_done` are already complete.

    Answer with DownloadProgress*/FileDownloaded* then DownloadFinished or DownloadFailed.
    """

    manifest: Manifest
    job: int
    files_done: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class StartInstall:
    """Run the installer; answer with InstallStep*/InstallFinished."""

    manifest: Manifest
    job: int


@dataclass(frozen=True, slots=True)
class Abort:
    """Stop the work of job `job` (partial downloads are kept for a later resume)."""

    reason: str
    job: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """A value so bad no version could be read: nothing can go to `otau_in`; record it."""

    reason: str
    raw: str


Action = Acknowledge | Report | RunChecks | StartDownload | StartInstall | Abort | Rejected
