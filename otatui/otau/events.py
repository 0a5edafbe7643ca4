"""What the session engine tells the update machine (`UpdateMachine.handle`).

Every event carries `now`: seconds from the engine's monotonic clock (the machine never reads a
clock). Events about work in progress carry an optional `job`: the number the machine put in the
`RunChecks` / `StartDownload` / `StartInstall` action that started that work (each start gets a
new number). When given and not the current job, the event is late (from work that was aborted,
replaced or interrupted by a restart) and is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from otatui.otau.manifest import Manifest, ManifestError


@dataclass(frozen=True, slots=True)
class Boot:
    """The session (re)started: report the installed version, resume unfinished work."""

    now: float


@dataclass(frozen=True, slots=True)
class ManifestReceived:
    """A `config_otau` value arrived, parsed (valid or not)."""

    parsed: Manifest | ManifestError
    now: float


@dataclass(frozen=True, slots=True)
class TestStep:
    """One check of the test phase, in words."""

    __test__ = False  # not a pytest test class

    message: str
    now: float
    job: int | None = None


@dataclass(frozen=True, slots=True)
class TestResult:
    """All checks done: passed or not, with a one-line reason."""

    __test__ = False  # not a pytest test class

    ok: bool
    message: str
    now: float
    job: int | None = None


@dataclass(frozen=True, slots=True)
class DownloadProgress:
    """File `index` (0-based, manifest order) has `done` of `total` bytes (None: size unknown)."""

    index: int
    done: int
    total: int | None
    now: float
    job: int | None = None


@dataclass(frozen=True, slots=True)
class FileDownloaded:
    """File `index` is complete and verified."""

    index: int
    now: float
    job: int | None = None


@dataclass(frozen=True, slots=True)
class DownloadFinished:
    """Every file is complete and verified."""

    now: float
    job: int | None = None


@dataclass(frozen=True, slots=True)
class DownloadFailed:
    """The download cannot go on (one line why)."""

    message: str
    now: float
    job: int | None = None


@dataclass(frozen=True, slots=True)
class InstallStep:
    """One line of installer output."""

    message: str
    now: float
    job: int | None = None


@dataclass(frozen=True, slots=True)
class InstallFinished:
    """The installer ended: success or not, with a one-line message."""

    ok: bool
    message: str
    now: float
    job: int | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    """The technician (or the fleet) cancels the current update."""

    now: float
    reason: str = "cancelled by the technician"


@dataclass(frozen=True, slots=True)
class Retry:
    """Run the last failed or aborted manifest again."""

    now: float


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: send suppressed progress whose rate-limit window has opened."""

    now: float


Event = (
    Boot
    | ManifestReceived
    | TestStep
    | TestResult
    | DownloadProgress
    | FileDownloaded
    | DownloadFinished
    | DownloadFailed
    | InstallStep
    | InstallFinished
    | Cancel
    | Retry
    | Tick
)
