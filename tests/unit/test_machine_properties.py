"""Property tests of the update state machine: ANY event sequence yields a valid report sequence.

A hypothesis RuleBasedStateMachine fires events in any order (duplicates, late and stale events,
cancels, newer manifests, retries, live boots and restarts through a JSON snapshot) and an
independent checker validates every batch of actions against the OTAU schema's rules.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

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
from otatui.otau.machine import INTERRUPTED_INSTALL, RESUMING, UpdateMachine
from otatui.otau.manifest import Manifest, ManifestError, parse_manifest
from otatui.otau.progress import ProgressPolicy
from otatui.otau.snapshot import Phase
from otatui.otau.status import Status

S = Status
INSTALLED = "1.0"


def _raw(version: str, kind: str, payload: object, name: str = "fw") -> str:
    return json.dumps({"version": version, "name": name, "type": kind, "payload": payload})


POOL_RAW = [
    _raw("2.0", "URL_LIST", [f"https://example.com/{n}.bin" for n in ("a", "b", "c")]),
    _raw("2.0", "FILE", "fw-2.0.bin"),  # same version, different raw
    _raw("3.0", "JSON", {"mode": "fast"}),  # no download
    _raw(INSTALLED, "FILE", "fw-1.0.bin"),  # the installed version
    _raw("4.0", "FILE", 7),  # invalid, with a version
    '{"name": "no version"',  # invalid, no version
]
# Parsed afresh on every draw: duplicates are equal text in distinct objects, as on the wire.
MANIFESTS = st.sampled_from(POOL_RAW).map(parse_manifest)

NEXT: dict[Status, set[Status]] = {
    S.INIT: {S.TEST},
    S.TEST: {S.TEST_STEP, S.TEST_SUCCESS, S.TEST_ERROR},
    S.TEST_STEP: {S.TEST_STEP, S.TEST_SUCCESS, S.TEST_ERROR},
    S.TEST_SUCCESS: {S.DOWNLOAD, S.INSTALL},
    S.DOWNLOAD: {S.DOWNLOAD_STEP, S.DOWNLOAD_SUCCESS, S.DOWNLOAD_ERROR},
    S.DOWNLOAD_STEP: {S.DOWNLOAD_STEP, S.DOWNLOAD_SUCCESS, S.DOWNLOAD_ERROR},
    S.DOWNLOAD_SUCCESS: {S.INSTALL},
    S.INSTALL: {S.INSTALL_STEP, S.INSTALL_SUCCESS, S.INSTALL_ERROR},
    S.INSTALL_STEP: {S.INSTALL_STEP, S.INSTALL_SUCCESS, S.INSTALL_ERROR},
    S.INSTALL_SUCCESS: {S.INSTALLED_VERSION},
}
# A restart repeats the start of the phase it was in: which statuses it may follow.
RESUMABLE = {S.TEST: {S.TEST, S.TEST_STEP}, S.DOWNLOAD: {S.DOWNLOAD, S.DOWNLOAD_STEP}}
STARTERS = {S.TEST: RunChecks, S.DOWNLOAD: StartDownload, S.INSTALL: StartInstall}
STEP = re.compile(r"^file (\d+) of (\d+), (?:(\d+)%|(\d+) bytes) \((.+)\)$")


@dataclass
class Run:
    """A manifest being worked on, as seen from the reports."""

    manifest: Manifest
    last: Status = S.INIT
    files: dict[int, tuple[float, int | None, bool]] = field(default_factory=dict)
    install_step_at: float | None = None


class ReportChecker:
    """Validates each batch of actions independently of the machine's code."""

    def __init__(self, policy: ProgressPolicy) -> None:
        self.policy = policy
        self.installed = INSTALLED
        self.run: Run | None = None
        self.last_failed: Manifest | None = None  # what a Retry may run again
        self.last_raw: str | None = None
        self.last_ok = False
        self.job = 0

    def check(
        self, event: Event, actions: list[Action], machine: UpdateMachine, job_before: int
    ) -> None:
        """Check one batch; `job_before` is the machine's job number before the event."""
        acks = [a for a in actions if isinstance(a, Acknowledge)]
        if isinstance(event, ManifestReceived):
            assert actions[:1] == [Acknowledge(event.parsed.raw)], "acknowledge first"
            assert len(acks) == 1
            if self.run is not None and event.parsed.raw == self.run.manifest.raw:
                assert actions == acks, "a duplicate delivery is only acknowledged"
        else:
            assert acks == []
        if getattr(event, "job", None) not in (None, job_before):
            assert actions == [], "late events of other work are ignored"
        for position, action in enumerate(actions):
            following = actions[position + 1] if position + 1 < len(actions) else None
            self._action(event, position, action, following)
        # The machine's view agrees with what its reports said.
        assert machine.installed_version == self.installed
        assert (machine.phase is Phase.IDLE) == (self.run is None)
        if self.run is not None:
            assert machine.current is not None
            assert machine.current.raw == self.run.manifest.raw

    def _action(self, event: Event, position: int, action: Action, following: object) -> None:
        match action:
            case Acknowledge():
                assert position == 0
            case Report(report=report):
                self._report(event, position, report.version, report.status, report.message)
                if report.status in STARTERS:
                    assert isinstance(following, STARTERS[report.status]), "work starts"
            case RunChecks() | StartDownload() | StartInstall():
                assert self.run is not None
                assert action.manifest.raw == self.run.manifest.raw
                assert action.job > self.job, "job numbers only grow"
                self.job = action.job
            case Abort():
                assert self.run is not None
                assert isinstance(following, Report)
                assert following.report.status is S.INSTALL_ABORTED
            case Rejected():
                assert isinstance(event, ManifestReceived)
                assert isinstance(event.parsed, ManifestError)
                assert not event.parsed.version
                assert self.run is None

    def _report(self, event: Event, position: int, version: str, status: Status, msg: str) -> None:
        boot_report = isinstance(event, Boot) and position == 0
        if boot_report:
            assert (version, status) == (self.installed, S.INSTALLED_VERSION), "boot report"
            if self.run is not None:
                self.run.files.clear()
                self.run.install_step_at = None
            return
        if self.run is None:
            self._idle_report(event, version, status, msg)
            return
        run = self.run
        assert version == run.manifest.version, "reports carry the manifest's version"
        allowed = NEXT.get(run.last, set()) | {S.INSTALL_ABORTED}
        if isinstance(event, Boot):
            if status in (S.TEST, S.DOWNLOAD):
                assert msg.startswith(RESUMING)
                assert run.last in RESUMABLE[status], f"resume {status} after {run.last}"
                allowed = allowed | {status}
            if status is S.INSTALL_ERROR:
                assert msg == INTERRUPTED_INSTALL
        assert status in allowed, f"{status} after {run.last}"
        if status is S.DOWNLOAD:
            assert run.manifest.needs_download
        if status is S.INSTALL and run.last is S.TEST_SUCCESS:
            assert not run.manifest.needs_download
        if status.is_error:
            assert msg, "errors say why"
        if status is S.DOWNLOAD_STEP:
            self._download_step(run, event.now, msg)
        elif status is S.INSTALL_STEP:
            if run.install_step_at is not None:
                assert event.now - run.install_step_at >= self.policy.install_step_interval
            run.install_step_at = event.now
        elif status in (S.DOWNLOAD, S.INSTALL):
            run.files.clear()
            run.install_step_at = None
        run.last = status
        if status.is_final:
            self._close(run.manifest, status)

    def _idle_report(self, event: Event, version: str, status: Status, msg: str) -> None:
        if status is S.INIT:
            if isinstance(event, ManifestReceived):
                assert isinstance(event.parsed, Manifest)
                manifest = event.parsed
                retry = manifest.raw == self.last_raw and not self.last_ok
            else:
                assert isinstance(event, Retry), "only a manifest or a retry starts work"
                assert self.last_failed is not None, "retry of nothing"
                manifest, retry = self.last_failed, True
            assert version == manifest.version != self.installed
            assert msg.startswith("retrying" if retry else "starting")
            self.run = Run(manifest)
            return
        assert isinstance(event, ManifestReceived), f"{status} out of the blue"
        if status is S.INSTALLED_VERSION:
            assert version == self.installed == event.parsed.version
        else:
            assert status is S.TEST_ERROR, f"{status} outside a run"
            assert isinstance(event.parsed, ManifestError)
            assert version == event.parsed.version
            assert msg == event.parsed.reason
            self.last_failed, self.last_raw, self.last_ok = None, event.parsed.raw, False

    def _download_step(self, run: Run, now: float, message: str) -> None:
        match = STEP.match(message)
        assert match, message
        number, count = int(match[1]), int(match[2])
        assert count == len(run.manifest.items)
        assert 1 <= number <= count
        assert match[5] == run.manifest.items[number - 1].filename
        percent = None if match[3] is None else int(match[3])
        assert percent is None or 0 <= percent <= 100
        seen = run.files.get(number)
        if seen is not None:
            last_time, last_percent, complete = seen
            assert not complete, "nothing after a file's 100 %"
            if percent != 100:
                assert now - last_time >= self.policy.min_interval, "step too soon"
                if percent is not None and last_percent is not None:
                    assert percent - last_percent >= self.policy.min_percent, "step too small"
        run.files[number] = (now, percent, percent == 100)

    def _close(self, manifest: Manifest, status: Status) -> None:
        ok = status is S.INSTALLED_VERSION
        if ok:
            self.installed = manifest.version
        self.last_failed = None if ok else manifest
        self.last_raw, self.last_ok = manifest.raw, ok
        self.run = None


TIME_STEPS = st.sampled_from([0.0, 0.1, 0.5, 1.0, 1.9, 2.0, 3.0, 10.0])
JOBS = st.sampled_from(["none", "current", "stale"])


class MachineUnderAnyEvents(RuleBasedStateMachine):
    machine: UpdateMachine
    checker: ReportChecker
    policy: ProgressPolicy

    @initialize(
        policy=st.builds(
            ProgressPolicy,
            min_interval=st.sampled_from([0.0, 1.0, 2.0]),
            min_percent=st.sampled_from([0.0, 10.0, 25.0]),
            install_step_interval=st.sampled_from([0.0, 2.0]),
        )
    )
    def start(self, policy: ProgressPolicy) -> None:
        self.policy = policy
        self.machine = UpdateMachine(INSTALLED, policy)
        self.checker = ReportChecker(policy)
        self.now = 0.0
        self.feed(Boot(self.now))

    def feed(self, event: Event) -> None:
        job_before = self.machine.job
        actions = self.machine.handle(event)
        self.checker.check(event, actions, self.machine, job_before)

    def tick(self, dt: float) -> float:
        self.now += dt
        return self.now

    def job(self, which: str) -> int | None:
        return {"none": None, "current": self.machine.job, "stale": self.machine.job - 1}[which]

    @rule(parsed=MANIFESTS, dt=TIME_STEPS)
    def manifest(self, parsed: Manifest | ManifestError, dt: float) -> None:
        self.feed(ManifestReceived(parsed, self.tick(dt)))

    @rule(data=st.data(), dt=TIME_STEPS, which=JOBS)
    def any_work_event(self, data: st.DataObject, dt: float, which: str) -> None:
        """Any work event, whatever the phase, with no, the current or a stale job number."""
        now, job = self.tick(dt), self.job(which)
        index = st.integers(-1, 3)
        event: Event = data.draw(
            st.one_of(
                st.builds(TestStep, st.just("check"), st.just(now), st.just(job)),
                st.builds(
                    TestResult, st.booleans(), st.just("no space"), st.just(now), st.just(job)
                ),
                st.builds(
                    DownloadProgress,
                    index,
                    st.integers(0, 1200),
                    st.none() | st.sampled_from([0, 1, 100, 1000]),
                    st.just(now),
                    st.just(job),
                ),
                st.builds(FileDownloaded, index, st.just(now), st.just(job)),
                st.builds(DownloadFinished, st.just(now), st.just(job)),
                st.builds(DownloadFailed, st.just(""), st.just(now), st.just(job)),
                st.builds(InstallStep, st.sampled_from(["", "a\nb"]), st.just(now), st.just(job)),
                st.builds(InstallFinished, st.booleans(), st.just(""), st.just(now), st.just(job)),
            )
        )
        self.feed(event)

    @rule(data=st.data(), dt=TIME_STEPS)
    def disruption(self, data: st.DataObject, dt: float) -> None:
        """A cancel, a retry, a live boot or a restart through the snapshot."""
        kind = data.draw(st.sampled_from(["cancel", "retry", "boot", "restart", "restart-clock"]))
        now = self.tick(dt)
        if kind == "cancel":
            self.feed(Cancel(now))
        elif kind == "retry":
            self.feed(Retry(now))
        elif kind == "boot":
            self.feed(Boot(now))
        else:
            saved = json.loads(json.dumps(self.machine.snapshot()))
            self.machine = UpdateMachine.restore(saved, self.policy)
            assert self.machine.snapshot() == saved
            if kind == "restart-clock":
                self.now = 0.0  # a new process: a new monotonic clock
            self.feed(Boot(self.now))

    @rule(dt=TIME_STEPS)
    def time_passes(self, dt: float) -> None:
        self.feed(Tick(self.tick(dt)))

    # Guided rules (only when they fit the phase) so that deep paths are reached often.

    @precondition(lambda self: self.machine.phase is Phase.TESTING)
    @rule(passed=st.booleans(), dt=TIME_STEPS)
    def guided_test(self, passed: bool, dt: float) -> None:
        job = self.machine.job
        event = TestResult(True, "ok", self.tick(dt), job) if passed else TestStep("disk", self.now)
        self.feed(event)

    @precondition(lambda self: self.machine.phase is Phase.DOWNLOADING)
    @rule(
        file=st.integers(0, 2),
        fraction=st.sampled_from([0.0, 0.05, 0.3, 0.5, 0.95, 1.0]),
        known=st.booleans(),
        dt=TIME_STEPS,
    )
    def guided_progress(self, file: int, fraction: float, known: bool, dt: float) -> None:
        current = self.machine.current
        assert current is not None
        index = file % len(current.items)
        total = 4000 if known else None
        done = int(4000 * fraction)
        self.feed(DownloadProgress(index, done, total, self.tick(dt), self.machine.job))

    @precondition(lambda self: self.machine.phase is Phase.DOWNLOADING)
    @rule(file=st.integers(0, 3), dt=TIME_STEPS)
    def guided_file_done(self, file: int, dt: float) -> None:
        current = self.machine.current
        assert current is not None
        if file < len(current.items):
            self.feed(FileDownloaded(file, self.tick(dt), self.machine.job))
        else:
            self.feed(DownloadFinished(self.tick(dt), self.machine.job))

    @precondition(lambda self: self.machine.phase is Phase.INSTALLING)
    @rule(finished=st.booleans(), dt=TIME_STEPS)
    def guided_install(self, finished: bool, dt: float) -> None:
        job = self.machine.job
        if finished:
            self.feed(InstallFinished(True, "exit 0", self.tick(dt), job))
        else:
            self.feed(InstallStep("copying", self.tick(dt), job))

    @invariant()
    def snapshot_is_json(self) -> None:
        json.dumps(self.machine.snapshot())


MachineUnderAnyEvents.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestMachineUnderAnyEvents = MachineUnderAnyEvents.TestCase


RESTART = "restart"


@st.composite
def plausible_flows(draw: st.DrawFn) -> list[Event | str]:
    """Updates that mostly go well, cut short at random, with noise and restarts mixed in."""
    now = 0.0

    def later() -> float:
        nonlocal now
        now += draw(TIME_STEPS)
        return now

    events: list[Event | str] = [Boot(now)]
    for _ in range(draw(st.integers(1, 3))):
        parsed = draw(MANIFESTS)
        flow: list[Event | str] = [ManifestReceived(parsed, later())]
        if isinstance(parsed, Manifest):
            flow += [TestStep("disk space", later()) for _ in range(draw(st.integers(0, 2)))]
            flow.append(TestResult(draw(st.integers(0, 9)) > 0, "checks", later()))
            for index, _item in enumerate(parsed.items):
                total = draw(st.none() | st.sampled_from([0, 10, 10_000]))
                for done in sorted(draw(st.lists(st.integers(0, 10_000), max_size=8))):
                    flow.append(DownloadProgress(index, done, total, later()))
                flow.append(FileDownloaded(index, later()))
            if parsed.items:
                ok = draw(st.integers(0, 9)) > 0
                flow.append(DownloadFinished(later()) if ok else DownloadFailed("404", later()))
            flow += [InstallStep(f"line {i}", later()) for i in range(draw(st.integers(0, 6)))]
            flow.append(InstallFinished(draw(st.integers(0, 9)) > 0, "exit", later()))
        flow = flow[: draw(st.integers(1, len(flow)))]
        noise = st.sampled_from(["cancel", "retry", "duplicate", "tick", RESTART, "boot"])
        for position, kind in draw(st.lists(st.tuples(st.integers(0, 50), noise), max_size=3)):
            extra: Event | str = {
                "cancel": Cancel(now),
                "retry": Retry(now),
                "duplicate": ManifestReceived(parsed, now),
                "tick": Tick(now),
                "boot": Boot(now),
            }.get(kind, RESTART)
            flow.insert(min(position, len(flow)), extra)
        events += flow
    return events


@settings(max_examples=200, deadline=None)
@given(
    flow=plausible_flows(),
    policy=st.sampled_from(
        [ProgressPolicy(), ProgressPolicy(0.0, 0.0, 0.0), ProgressPolicy(5, 30)]
    ),
)
def test_plausible_flows_yield_valid_reports(
    flow: list[Event | str], policy: ProgressPolicy
) -> None:
    machine = UpdateMachine(INSTALLED, policy)
    checker = ReportChecker(policy)
    last_now = 0.0
    for event in flow:
        if event == RESTART:
            machine = UpdateMachine.restore(json.loads(json.dumps(machine.snapshot())), policy)
            event = Boot(last_now)
        assert not isinstance(event, str)
        # Noise events were stamped when drawn: never let time run backwards.
        last_now = max(last_now, event.now)
        event = replace(event, now=last_now)
        job_before = machine.job
        checker.check(event, machine.handle(event), machine, job_before)
