"""The update state machine: which `otau_in` reports and actions come next, for one device.

Pure: no I/O, no asyncio, no clock. The session engine feeds it events (`otatui.otau.events`) and
carries out, in order, the actions it returns (`otatui.otau.actions`), writing every `Report`
through the outbox. `handle` never raises for any event in any state.

Phases: IDLE -> TESTING -> DOWNLOADING -> INSTALLING -> IDLE (JSON manifests, which need no
download, go from TESTING straight to INSTALLING). Reports of one manifest follow the schema:

    INIT, TEST, TEST_STEP*, TEST_SUCCESS, [DOWNLOAD, DOWNLOAD_STEP*, DOWNLOAD_SUCCESS,]
    INSTALL, INSTALL_STEP*, INSTALL_SUCCESS, INSTALLED_VERSION (new version)

and the work on a manifest ends in exactly one final status: INSTALLED_VERSION, TEST_ERROR,
DOWNLOAD_ERROR, INSTALL_ERROR or INSTALL_ABORTED.

Rules:
- Every received manifest is acknowledged first (`Acknowledge` with the identical raw text).
- The same raw as the manifest being worked on (a duplicate delivery): acknowledge only.
- Any other value while working supersedes the work: `Abort` + INSTALL_ABORTED for the current
  manifest, then the new value is handled as below (a new offer replaces the old one).
- A value that is not a valid manifest: TEST_ERROR with the parser's reason when a version could
  be read, else `Rejected` (nothing can be written to `otau_in` without a version).
- A valid manifest whose version is the installed one: INSTALLED_VERSION only, no work.
- Any other valid manifest starts work: INIT, TEST and `RunChecks`. The same raw as the last
  manifest that failed or was aborted is a retry (INIT says so). `Retry` does the same for the
  last failed or aborted manifest; `Retry` and `Cancel` with nothing to act on return [].
- Events that do not fit the current phase, or carry a stale `job` number, return [] (the engine is
  asynchronous: late events of aborted work are normal).
- Step reports are rate-limited by `ProgressPolicy` (exact rule in `otatui.otau.progress`);
  DOWNLOAD_STEP reads `file i of n, p% (name)` (1-based i), or `file i of n, B bytes (name)` when
  the size is unknown. TEST_STEP is not limited: the engine's checks are few and fixed.
  The engine sends `Tick` now and then (e.g. every second) so held-back progress goes out.
- Messages from events are made one line (newlines become spaces) and cut to 500 characters.
- Work events may carry the `job` number of the start action they answer (see `events`).

Persistence: the engine saves `snapshot()` (a JSON-able dict) after every `handle` whose
snapshot changed (a completed file changes it without any report), in the same transaction as
the outbox rows of the reports, and rebuilds the machine after a restart with
`UpdateMachine.restore(snapshot, policy)` followed by `Boot` (a `Boot` without a restart is
handled the same way: whatever work the engine ran before it is taken as gone). `Boot` always
reports INSTALLED_VERSION with the installed version (the schema wants it on every boot); then
work that was TESTING or DOWNLOADING resumes (TEST / DOWNLOAD "resuming after a restart" with
`RunChecks` / `StartDownload`, whose `files_done` lists the files already complete), and work
that was INSTALLING ends with INSTALL_ERROR: an installer is never silently run twice.
"""

from __future__ import annotations

from typing import Any

from otatui.otau.actions import (
    Abort,
    Acknowledge,
    Action,
    Rejected,
    Report,
    RunChecks,
    StartDownload,
    StartInstall,
)
from otatui.otau.events import (
    Boot,
    Cancel,
    DownloadFailed,
    DownloadFinished,
    DownloadProgress,
    Event,
    FileDownloaded,
    InstallFinished,
    InstallStep,
    ManifestReceived,
    Retry,
    TestResult,
    TestStep,
    Tick,
)
from otatui.otau.manifest import Manifest, ManifestError, parse_manifest
from otatui.otau.progress import DownloadLimiter, DownloadStep, LineLimiter, ProgressPolicy
from otatui.otau.snapshot import MachineSnapshot, Outcome, Phase
from otatui.otau.status import Status, StatusReport

MESSAGE_LIMIT = 500
RESUMING = "resuming after a restart"
INTERRUPTED_INSTALL = "interrupted by a restart during install; result unknown"

_PHASE_ERRORS = {
    Phase.TESTING: Status.TEST_ERROR,
    Phase.DOWNLOADING: Status.DOWNLOAD_ERROR,
    Phase.INSTALLING: Status.INSTALL_ERROR,
}


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """`text` as one trimmed line of at most `limit` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class UpdateMachine:
    """One device's update flow (see the module docstring for the rules)."""

    def __init__(self, installed_version: str, policy: ProgressPolicy | None = None) -> None:
        self._policy = policy if policy is not None else ProgressPolicy()
        self._installed = installed_version
        self._phase = Phase.IDLE
        self._current: Manifest | None = None
        self._job = 0
        self._files_done: set[int] = set()
        self._downloads = DownloadLimiter(self._policy)
        self._lines = LineLimiter(self._policy.install_step_interval)
        self._last_raw: str | None = None
        self._last_manifest: Manifest | None = None
        self._last_outcome: Outcome | None = None
        self._boot_failure: Outcome | None = None

    # -- read-only view for UIs ------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def current(self) -> Manifest | None:
        """The manifest being worked on (None when idle)."""
        return self._current

    @property
    def installed_version(self) -> str:
        return self._installed

    @property
    def last_outcome(self) -> Outcome | None:
        return self._last_outcome

    @property
    def job(self) -> int:
        """The number of the current (or last) job, as put in the start actions."""
        return self._job

    @property
    def files_done(self) -> frozenset[int]:
        """Indexes of the current manifest's files that are complete."""
        return frozenset(self._files_done)

    # -- persistence -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to go on after a restart, as JSON-able data."""
        return MachineSnapshot(
            installed_version=self._installed,
            phase=self._phase,
            job=self._job,
            current_raw=self._current.raw if self._current is not None else None,
            files_done=tuple(sorted(self._files_done)),
            last_raw=self._last_raw,
            last_outcome=self._last_outcome,
            boot_failure=self._boot_failure,
        ).to_data()

    @classmethod
    def restore(cls, data: object, policy: ProgressPolicy | None = None) -> UpdateMachine:
        """The machine saved by `snapshot()`; feed it `Boot` next.

        Raises ValueError (one line) when `data` is not a snapshot of this format.
        """
        saved = MachineSnapshot.from_data(data)
        machine = cls(saved.installed_version, policy)
        machine._job = saved.job
        machine._last_raw = saved.last_raw
        machine._last_outcome = saved.last_outcome
        machine._boot_failure = saved.boot_failure
        if saved.last_raw is not None and not machine._last_ok():
            last = parse_manifest(saved.last_raw)
            machine._last_manifest = last if isinstance(last, Manifest) else None
        if saved.current_raw is not None:
            machine._resume(saved.phase, saved.current_raw, saved.files_done)
        return machine

    def _resume(self, phase: Phase, raw: str, files_done: tuple[int, ...]) -> None:
        parsed = parse_manifest(raw)
        if isinstance(parsed, Manifest) and parsed.version != self._installed:
            self._current, self._phase = parsed, phase
            self._files_done = {i for i in files_done if i < len(parsed.items)}
            return
        # The saved manifest no longer reads as work to do (e.g. a stricter parser): it ends
        # with its phase's error at the next Boot (or silently, if it has no version).
        reason = parsed.reason if isinstance(parsed, ManifestError) else "already installed"
        if parsed.version:
            message = one_line(f"could not resume after a restart: {reason}")
            self._boot_failure = Outcome(parsed.version, _PHASE_ERRORS[phase], message)
            self._last_raw, self._last_manifest = raw, None
            self._last_outcome = self._boot_failure

    # -- events ----------------------------------------------------------------------------

    def handle(self, event: Event) -> list[Action]:
        """The ordered actions for `event` ([] when it does not apply now)."""
        match event:
            case Boot():
                return self._boot()
            case ManifestReceived(parsed=parsed):
                return self._manifest(parsed)
            case Cancel(reason=reason):
                return self._abort(one_line(reason) or "cancelled") if self._current else []
            case Retry():
                return self._retry()
            case Tick(now=now):
                return self._tick(now)
        if getattr(event, "job", None) not in (None, self._job):
            return []
        match event:
            case TestStep(message=message) if self._phase is Phase.TESTING:
                return [self._report(Status.TEST_STEP, one_line(message))]
            case TestResult(ok=ok, message=message) if self._phase is Phase.TESTING:
                return self._tested(ok, one_line(message))
            case DownloadProgress() if self._phase is Phase.DOWNLOADING:
                return self._progress(event)
            case FileDownloaded(index=index, now=now) if self._phase is Phase.DOWNLOADING:
                return self._file_done(index, now)
            case DownloadFinished() if self._phase is Phase.DOWNLOADING:
                return self._downloaded()
            case DownloadFailed(message=message) if self._phase is Phase.DOWNLOADING:
                return self._finish(Status.DOWNLOAD_ERROR, one_line(message) or "download failed")
            case InstallStep(message=message, now=now) if self._phase is Phase.INSTALLING:
                line = self._lines.offer(one_line(message), now)
                return [] if line is None else [self._report(Status.INSTALL_STEP, line)]
            case InstallFinished(ok=ok, message=message) if self._phase is Phase.INSTALLING:
                return self._installed_result(ok, one_line(message))
        return []

    def _boot(self) -> list[Action]:
        actions: list[Action] = [self._report_for(self._installed, Status.INSTALLED_VERSION, "")]
        if self._boot_failure is not None:
            failure, self._boot_failure = self._boot_failure, None
            actions.append(self._report_for(failure.version, failure.status, failure.message))
        manifest = self._current
        if manifest is None:
            return actions
        self._reset_limiters()
        if self._phase is Phase.TESTING:
            self._job += 1
            actions += [self._report(Status.TEST, RESUMING), RunChecks(manifest, self._job)]
        elif self._phase is Phase.DOWNLOADING:
            actions += self._start_download(f"{RESUMING}, {self._done_text(manifest)}")
        else:
            actions += self._finish(Status.INSTALL_ERROR, INTERRUPTED_INSTALL)
        return actions

    def _manifest(self, parsed: Manifest | ManifestError) -> list[Action]:
        actions: list[Action] = [Acknowledge(parsed.raw)]
        if self._current is not None:
            if parsed.raw == self._current.raw:
                return actions
            newer = f" ({parsed.version})" if parsed.version else ""
            actions += self._abort(f"replaced by a newer manifest{newer}")
        if isinstance(parsed, ManifestError):
            if not parsed.version:
                actions.append(Rejected(one_line(parsed.reason), parsed.raw))
                return actions
            report = self._report_for(parsed.version, Status.TEST_ERROR, one_line(parsed.reason))
            self._remember(parsed.raw, None, report.report)
            actions.append(report)
            return actions
        if parsed.version == self._installed:
            actions.append(self._report_for(self._installed, Status.INSTALLED_VERSION, ""))
            return actions
        retry = parsed.raw == self._last_raw and not self._last_ok()
        actions += self._start(parsed, retry=retry)
        return actions

    def _retry(self) -> list[Action]:
        manifest = self._last_manifest
        if self._current is not None or manifest is None or self._last_ok():
            return []
        if manifest.version == self._installed:
            return []
        return self._start(manifest, retry=True)

    def _tick(self, now: float) -> list[Action]:
        if self._phase is Phase.DOWNLOADING:
            return [self._download_step(step) for step in self._downloads.flush(now)]
        if self._phase is Phase.INSTALLING:
            line = self._lines.flush(now)
            return [] if line is None else [self._report(Status.INSTALL_STEP, line)]
        return []

    # -- phases ----------------------------------------------------------------------------

    def _start(self, manifest: Manifest, *, retry: bool) -> list[Action]:
        self._current = manifest
        self._phase = Phase.TESTING
        self._job += 1
        self._files_done = set()
        self._reset_limiters()
        verb = "retrying" if retry else "starting"
        name = f" ({one_line(manifest.name, 100)})" if manifest.name else ""
        return [
            self._report(Status.INIT, f"{verb} update to {manifest.version}{name}"),
            self._report(Status.TEST, "running checks"),
            RunChecks(manifest, self._job),
        ]

    def _tested(self, ok: bool, message: str) -> list[Action]:
        if not ok:
            return self._finish(Status.TEST_ERROR, message or "checks failed")
        actions: list[Action] = [self._report(Status.TEST_SUCCESS, message)]
        assert self._current is not None  # TESTING always has a manifest
        if self._current.needs_download:
            actions += self._start_download(f"{len(self._current.items)} file(s)")
        else:
            actions += self._start_install()
        return actions

    def _start_download(self, message: str) -> list[Action]:
        assert self._current is not None
        self._phase = Phase.DOWNLOADING
        self._job += 1
        done = tuple(sorted(self._files_done))
        return [
            self._report(Status.DOWNLOAD, message),
            StartDownload(self._current, self._job, done),
        ]

    def _progress(self, event: DownloadProgress) -> list[Action]:
        if not self._valid_file(event.index):
            return []
        total = event.total if event.total is None or event.total >= 0 else None
        step = DownloadStep(event.index, max(0, event.done), total)
        sent = self._downloads.offer(step, event.now)
        return [] if sent is None else [self._download_step(sent)]

    def _file_done(self, index: int, now: float) -> list[Action]:
        if not self._valid_file(index):
            return []
        self._files_done.add(index)
        sent = self._downloads.complete(index, now)
        return [] if sent is None else [self._download_step(sent)]

    def _downloaded(self) -> list[Action]:
        assert self._current is not None
        count = len(self._current.items)
        self._files_done = set(range(count))
        actions: list[Action] = [
            self._report(Status.DOWNLOAD_SUCCESS, f"{count} file(s) downloaded and verified")
        ]
        return actions + self._start_install()

    def _start_install(self) -> list[Action]:
        assert self._current is not None
        self._phase = Phase.INSTALLING
        self._job += 1
        self._lines = LineLimiter(self._policy.install_step_interval)
        return [self._report(Status.INSTALL, "installing"), StartInstall(self._current, self._job)]

    def _installed_result(self, ok: bool, message: str) -> list[Action]:
        if not ok:
            return self._finish(Status.INSTALL_ERROR, message or self._lines.latest or "failed")
        assert self._current is not None
        version = self._current.version
        actions: list[Action] = [self._report(Status.INSTALL_SUCCESS, message)]
        self._installed = version
        return actions + self._finish(Status.INSTALLED_VERSION, "")

    def _abort(self, reason: str) -> list[Action]:
        return [Abort(reason, self._job), *self._finish(Status.INSTALL_ABORTED, reason)]

    def _finish(self, status: Status, message: str) -> list[Action]:
        """End the current work with its final report."""
        assert self._current is not None
        report = self._report(status, message)
        self._remember(self._current.raw, self._current, report.report)
        self._current = None
        self._phase = Phase.IDLE
        self._files_done = set()
        self._reset_limiters()
        return [report]

    # -- helpers ---------------------------------------------------------------------------

    def _remember(self, raw: str, manifest: Manifest | None, final: StatusReport) -> None:
        self._last_raw = raw
        self._last_manifest = manifest
        self._last_outcome = Outcome(final.version, final.status, final.message)

    def _last_ok(self) -> bool:
        return self._last_outcome is not None and self._last_outcome.ok

    def _valid_file(self, index: int) -> bool:
        assert self._current is not None
        return 0 <= index < len(self._current.items) and index not in self._files_done

    def _download_step(self, step: DownloadStep) -> Report:
        assert self._current is not None
        items = self._current.items
        name = items[step.index].filename
        amount = f"{step.done} bytes" if step.percent is None else f"{step.percent}%"
        return self._report(
            Status.DOWNLOAD_STEP, f"file {step.index + 1} of {len(items)}, {amount} ({name})"
        )

    def _done_text(self, manifest: Manifest) -> str:
        return f"{len(self._files_done)} of {len(manifest.items)} file(s) done"

    def _reset_limiters(self) -> None:
        self._downloads = DownloadLimiter(self._policy)
        self._lines = LineLimiter(self._policy.install_step_interval)

    def _report(self, status: Status, message: str) -> Report:
        assert self._current is not None
        return self._report_for(self._current.version, status, message)

    @staticmethod
    def _report_for(version: str, status: Status, message: str) -> Report:
        return Report(StatusReport(version=version, status=status, message=message))
