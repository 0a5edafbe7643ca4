"""The update state machine, rule by rule (the property tests are in test_machine_properties)."""

from __future__ import annotations

import json
from typing import Any

import pytest

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
from otatui.otau.machine import INTERRUPTED_INSTALL, UpdateMachine
from otatui.otau.manifest import Manifest, ManifestError, parse_manifest
from otatui.otau.progress import ProgressPolicy
from otatui.otau.snapshot import Phase
from otatui.otau.status import Status, StatusReport

S = Status


def url_list(version: str = "2.0", files: int = 3, name: str = "firmware") -> Manifest:
    payload = [f"https://example.com/{chr(ord('a') + i)}.bin" for i in range(files)]
    return valid({"version": version, "name": name, "type": "URL_LIST", "payload": payload})


def json_manifest(version: str = "3.0") -> Manifest:
    return valid({"version": version, "name": "settings", "type": "JSON", "payload": {"x": 1}})


def valid(value: dict[str, Any]) -> Manifest:
    parsed = parse_manifest(json.dumps(value))
    assert isinstance(parsed, Manifest), parsed
    return parsed


def invalid(raw: str) -> ManifestError:
    parsed = parse_manifest(raw)
    assert isinstance(parsed, ManifestError)
    return parsed


def reports(actions: list[Action]) -> list[tuple[str, Status, str]]:
    return [
        (a.report.version, a.report.status, a.report.message)
        for a in actions
        if isinstance(a, Report)
    ]


def statuses(actions: list[Action]) -> list[Status]:
    return [a.report.status for a in actions if isinstance(a, Report)]


def received(
    machine: UpdateMachine, manifest: Manifest | ManifestError, now: float = 0.0
) -> list[Action]:
    return machine.handle(ManifestReceived(manifest, now))


def in_test(manifest: Manifest | None = None) -> UpdateMachine:
    machine = UpdateMachine("1.0")
    received(machine, manifest or url_list())
    assert machine.phase is Phase.TESTING
    return machine


def in_download(manifest: Manifest | None = None) -> UpdateMachine:
    machine = in_test(manifest)
    machine.handle(TestResult(True, "", 1.0))
    assert machine.phase is Phase.DOWNLOADING
    return machine


def in_install(manifest: Manifest | None = None) -> UpdateMachine:
    if manifest is not None and not manifest.needs_download:
        machine = in_test(manifest)
        machine.handle(TestResult(True, "", 1.0))
    else:
        machine = in_download(manifest)
        machine.handle(DownloadFinished(2.0))
    assert machine.phase is Phase.INSTALLING
    return machine


def test_boot_reports_the_installed_version() -> None:
    assert UpdateMachine("1.0").handle(Boot(0.0)) == [
        Report(StatusReport("1.0", S.INSTALLED_VERSION, ""))
    ]


@pytest.mark.parametrize(
    "parsed",
    [url_list(), url_list("1.0"), invalid('{"version": "2.0"}'), invalid("not json")],
    ids=["valid", "installed-version", "bad-with-version", "garbage"],
)
def test_every_received_value_is_acknowledged_first_with_its_raw_text(
    parsed: Manifest | ManifestError,
) -> None:
    for machine in (UpdateMachine("1.0"), in_test(url_list("9.0")), in_install(url_list("9.0"))):
        actions = received(machine, parsed)
        assert actions[0] == Acknowledge(parsed.raw)
        assert [a for a in actions if isinstance(a, Acknowledge)] == [actions[0]]


def test_ack_echoes_the_identical_text_not_a_reserialisation() -> None:
    raw = '{ "version":"2.0",  "name":"fw", "type":"FILE", "payload":"fw.bin", "extra": [1] }'
    manifest = parse_manifest(raw)
    assert isinstance(manifest, Manifest)
    assert UpdateMachine("1.0").handle(ManifestReceived(manifest, 0.0))[0] == Acknowledge(raw)


def test_a_bad_manifest_with_a_version_is_a_test_error_with_the_reason() -> None:
    bad = invalid('{"version": "2.0", "name": "fw", "type": "FILE"}')
    machine = UpdateMachine("1.0")
    assert received(machine, bad)[1:] == [Report(StatusReport("2.0", S.TEST_ERROR, bad.reason))]
    assert machine.phase is Phase.IDLE
    assert machine.last_outcome is not None
    assert machine.last_outcome.status is S.TEST_ERROR
    assert machine.handle(Retry(1.0)) == []  # nothing valid to run again


def test_a_manifest_without_a_readable_version_is_rejected() -> None:
    bad = invalid("[1, 2")
    machine = UpdateMachine("1.0")
    assert received(machine, bad) == [Acknowledge(bad.raw), Rejected(bad.reason, bad.raw)]
    assert machine.phase is Phase.IDLE
    assert machine.last_outcome is None


def test_the_installed_version_only_reports_installed_version() -> None:
    machine = UpdateMachine("1.0")
    manifest = url_list("1.0")
    assert received(machine, manifest) == [
        Acknowledge(manifest.raw),
        Report(StatusReport("1.0", S.INSTALLED_VERSION, "")),
    ]
    assert machine.phase is Phase.IDLE
    assert machine.current is None


def test_the_whole_flow_of_a_three_file_update() -> None:
    manifest = url_list("2.0", files=3)
    machine = UpdateMachine("1.0")
    actions = received(machine, manifest)
    assert actions[0] == Acknowledge(manifest.raw)
    assert statuses(actions) == [S.INIT, S.TEST]
    assert actions[-1] == RunChecks(manifest, machine.job)
    assert machine.current is manifest
    assert reports(machine.handle(TestStep("disk space ok", 1.0))) == [
        ("2.0", S.TEST_STEP, "disk space ok")
    ]
    actions = machine.handle(TestResult(True, "all checks passed", 1.5))
    assert statuses(actions) == [S.TEST_SUCCESS, S.DOWNLOAD]
    assert actions[-1] == StartDownload(manifest, machine.job, ())
    steps = []
    now = 2.0
    for index in range(3):
        for done in (0, 500, 1000):
            now += 3.0
            steps += reports(machine.handle(DownloadProgress(index, done, 1000, now)))
        steps += reports(machine.handle(FileDownloaded(index, now)))
    assert [message for _, _, message in steps] == [
        f"file {i} of 3, {p}% ({name}.bin)"
        for i, name in ((1, "a"), (2, "b"), (3, "c"))
        for p in (0, 50, 100)
    ]
    actions = machine.handle(DownloadFinished(now))
    assert statuses(actions) == [S.DOWNLOAD_SUCCESS, S.INSTALL]
    assert actions[-1] == StartInstall(manifest, machine.job)
    assert statuses(machine.handle(InstallStep("copying", now + 1))) == [S.INSTALL_STEP]
    actions = machine.handle(InstallFinished(True, "done", now + 2))
    assert reports(actions) == [
        ("2.0", S.INSTALL_SUCCESS, "done"),
        ("2.0", S.INSTALLED_VERSION, ""),
    ]
    assert machine.installed_version == "2.0"
    assert machine.phase is Phase.IDLE
    assert machine.current is None
    assert machine.last_outcome is not None
    assert machine.last_outcome.ok
    assert statuses(machine.handle(Boot(now + 3))) == [S.INSTALLED_VERSION]
    assert reports(machine.handle(Boot(now + 3))) == [("2.0", S.INSTALLED_VERSION, "")]


def test_a_json_manifest_skips_the_download_phase() -> None:
    manifest = json_manifest()
    machine = in_test(manifest)
    actions = machine.handle(TestResult(True, "", 1.0))
    assert statuses(actions) == [S.TEST_SUCCESS, S.INSTALL]
    assert actions[-1] == StartInstall(manifest, machine.job)
    assert machine.phase is Phase.INSTALLING


@pytest.mark.parametrize(
    ("start", "event", "final", "message"),
    [
        (in_test, TestResult(False, "not enough space", 1.0), S.TEST_ERROR, "not enough space"),
        (in_test, TestResult(False, "", 1.0), S.TEST_ERROR, "checks failed"),
        (in_download, DownloadFailed("HTTP 404", 3.0), S.DOWNLOAD_ERROR, "HTTP 404"),
        (in_download, DownloadFailed("", 3.0), S.DOWNLOAD_ERROR, "download failed"),
        (in_install, InstallFinished(False, "exit 3", 3.0), S.INSTALL_ERROR, "exit 3"),
        (in_install, InstallFinished(False, "", 3.0), S.INSTALL_ERROR, "failed"),
    ],
)
def test_each_failure_ends_in_its_own_error_with_a_message(
    start: Any, event: Event, final: Status, message: str
) -> None:
    machine = start()
    assert reports(machine.handle(event)) == [("2.0", final, message)]
    assert machine.phase is Phase.IDLE
    assert machine.installed_version == "1.0"
    assert machine.last_outcome is not None
    assert (machine.last_outcome.status, machine.last_outcome.message) == (final, message)


def test_an_install_error_without_a_message_uses_the_last_installer_line() -> None:
    machine = in_install()
    machine.handle(InstallStep("starting", 3.0))
    machine.handle(InstallStep("disk full", 3.1))  # suppressed by the rate limit
    assert reports(machine.handle(InstallFinished(False, "", 3.2))) == [
        ("2.0", S.INSTALL_ERROR, "disk full")
    ]


@pytest.mark.parametrize("start", [in_test, in_download, in_install])
def test_cancel_during_work_aborts_with_install_aborted(start: Any) -> None:
    machine = start()
    job = machine.job
    actions = machine.handle(Cancel(5.0))
    assert actions == [
        Abort("cancelled by the technician", job),
        Report(StatusReport("2.0", S.INSTALL_ABORTED, "cancelled by the technician")),
    ]
    assert machine.phase is Phase.IDLE
    assert machine.handle(Cancel(6.0)) == []


def test_cancel_and_retry_with_nothing_to_act_on_do_nothing() -> None:
    machine = UpdateMachine("1.0")
    assert machine.handle(Cancel(0.0)) == []
    assert machine.handle(Retry(0.0)) == []
    busy = in_test()
    busy.handle(TestResult(False, "no space", 1.0))
    received(busy, url_list("3.0"), 2.0)
    assert busy.handle(Retry(3.0)) == []  # busy with 3.0: the failed 2.0 waits
    assert busy.current is not None
    assert busy.current.version == "3.0"


@pytest.mark.parametrize("start", [in_test, in_download, in_install])
def test_a_newer_manifest_aborts_the_current_one_before_it_starts(start: Any) -> None:
    machine = start()
    old_job = machine.job
    newer = url_list("3.0", files=1)
    actions = received(machine, newer)
    assert actions[:3] == [
        Acknowledge(newer.raw),
        Abort("replaced by a newer manifest (3.0)", old_job),
        Report(StatusReport("2.0", S.INSTALL_ABORTED, "replaced by a newer manifest (3.0)")),
    ]
    assert reports(actions)[1:] == [
        ("3.0", S.INIT, "starting update to 3.0 (firmware)"),
        ("3.0", S.TEST, "running checks"),
    ]
    assert actions[-1] == RunChecks(newer, machine.job)
    assert machine.current is newer


def test_a_different_raw_with_the_same_version_is_a_new_manifest() -> None:
    machine = in_download(url_list("2.0", files=3))
    other = url_list("2.0", files=2)
    assert statuses(received(machine, other)) == [S.INSTALL_ABORTED, S.INIT, S.TEST]
    assert machine.current is other


def test_offering_the_installed_version_during_work_aborts_it() -> None:
    machine = in_download()
    actions = received(machine, url_list("1.0"))
    assert reports(actions) == [
        ("2.0", S.INSTALL_ABORTED, "replaced by a newer manifest (1.0)"),
        ("1.0", S.INSTALLED_VERSION, ""),
    ]
    assert machine.phase is Phase.IDLE


def test_a_bad_value_during_work_replaces_it_too() -> None:
    machine = in_download()
    bad = invalid('{"version": "4.0"}')
    assert statuses(received(machine, bad)) == [S.INSTALL_ABORTED, S.TEST_ERROR]
    machine = in_download()
    garbage = invalid("{{{")
    actions = received(machine, garbage)
    assert statuses(actions) == [S.INSTALL_ABORTED]
    assert actions[-1] == Rejected(garbage.reason, garbage.raw)


@pytest.mark.parametrize("start", [in_test, in_download, in_install])
def test_a_duplicate_delivery_during_work_is_only_acknowledged(start: Any) -> None:
    machine = start()
    phase, job = machine.phase, machine.job
    manifest = machine.current
    assert manifest is not None
    assert received(machine, manifest) == [Acknowledge(manifest.raw)]
    # The same text parsed again is the same manifest too.
    again = parse_manifest(manifest.raw)
    assert isinstance(again, Manifest)
    assert received(machine, again) == [Acknowledge(manifest.raw)]
    assert (machine.phase, machine.job) == (phase, job)


def test_the_same_raw_after_a_failure_is_a_retry() -> None:
    machine = in_download()
    manifest = machine.current
    assert manifest is not None
    machine.handle(DownloadFailed("timeout", 3.0))
    actions = received(machine, manifest, 4.0)
    assert reports(actions)[:1] == [("2.0", S.INIT, "retrying update to 2.0 (firmware)")]
    assert machine.phase is Phase.TESTING


def test_retry_runs_the_last_failed_or_aborted_manifest_again() -> None:
    machine = in_install()
    manifest = machine.current
    machine.handle(InstallFinished(False, "exit 1", 3.0))
    actions = machine.handle(Retry(4.0))
    assert statuses(actions) == [S.INIT, S.TEST]
    assert actions[-1] == RunChecks(manifest, machine.job)  # type: ignore[arg-type]
    machine.handle(Cancel(5.0))
    assert statuses(machine.handle(Retry(6.0))) == [S.INIT, S.TEST]


def test_retry_after_a_success_does_nothing() -> None:
    machine = in_install(json_manifest())
    machine.handle(InstallFinished(True, "", 3.0))
    assert machine.handle(Retry(4.0)) == []
    assert received(machine, json_manifest())[1:] == [
        Report(StatusReport("3.0", S.INSTALLED_VERSION, ""))
    ]


OUT_OF_PHASE: dict[Phase, list[Event]] = {
    Phase.IDLE: [
        TestStep("x", 1.0),
        TestResult(True, "", 1.0),
        DownloadProgress(0, 5, 10, 1.0),
        FileDownloaded(0, 1.0),
        DownloadFinished(1.0),
        DownloadFailed("x", 1.0),
        InstallStep("x", 1.0),
        InstallFinished(True, "", 1.0),
        Tick(1.0),
    ],
    Phase.TESTING: [
        DownloadProgress(0, 5, 10, 1.0),
        FileDownloaded(0, 1.0),
        DownloadFinished(1.0),
        DownloadFailed("x", 1.0),
        InstallStep("x", 1.0),
        InstallFinished(True, "", 1.0),
        Tick(1.0),
    ],
    Phase.DOWNLOADING: [
        TestStep("x", 3.0),
        TestResult(False, "", 3.0),
        InstallStep("x", 3.0),
        InstallFinished(True, "", 3.0),
        DownloadProgress(3, 5, 10, 3.0),  # no such file
        DownloadProgress(-1, 5, 10, 3.0),
        FileDownloaded(7, 3.0),
    ],
    Phase.INSTALLING: [
        TestStep("x", 3.0),
        TestResult(True, "", 3.0),
        DownloadProgress(0, 5, 10, 3.0),
        FileDownloaded(0, 3.0),
        DownloadFinished(3.0),
        DownloadFailed("x", 3.0),
    ],
}
STARTS = {
    Phase.IDLE: lambda: UpdateMachine("1.0"),
    Phase.TESTING: in_test,
    Phase.DOWNLOADING: in_download,
    Phase.INSTALLING: in_install,
}


@pytest.mark.parametrize("phase", list(Phase))
def test_events_that_do_not_fit_the_phase_are_ignored(phase: Phase) -> None:
    machine = STARTS[phase]()
    before = machine.snapshot()
    for event in OUT_OF_PHASE[phase]:
        assert machine.handle(event) == [], event
    assert machine.snapshot() == before


def test_late_events_of_replaced_work_are_ignored_by_their_job_number() -> None:
    machine = in_download()
    old_job = machine.job
    received(machine, url_list("3.0"))
    machine.handle(TestResult(True, "", 2.0))
    assert machine.phase is Phase.DOWNLOADING
    assert machine.job != old_job
    for event in (
        DownloadProgress(0, 5, 10, 3.0, job=old_job),
        FileDownloaded(0, 3.0, job=old_job),
        DownloadFailed("connection reset", 3.0, job=old_job),
        DownloadFinished(3.0, job=old_job),
    ):
        assert machine.handle(event) == []
    assert machine.phase is Phase.DOWNLOADING
    assert machine.handle(DownloadFinished(3.0, job=machine.job)) != []


def test_download_steps_are_rate_limited_by_time_and_percent() -> None:
    machine = in_download(url_list(files=2))

    def step(index: int, done: int, now: float) -> list[str]:
        return [m for _, _, m in reports(machine.handle(DownloadProgress(index, done, 1000, now)))]

    assert step(0, 10, 10.0) == ["file 1 of 2, 1% (a.bin)"]  # first step of the file
    assert step(0, 500, 11.0) == []  # 49 % more, but only 1 s later
    assert step(0, 105, 14.0) == []  # 9 % more, 4 s later: percent rule holds it back
    assert step(0, 110, 14.5) == ["file 1 of 2, 11% (a.bin)"]  # 10 % and 4.5 s
    assert step(1, 1, 14.5) == ["file 2 of 2, 0% (b.bin)"]  # per file
    assert step(0, 999, 15.0) == []
    assert step(0, 1000, 15.1) == ["file 1 of 2, 100% (a.bin)"]  # completion always goes out
    assert step(0, 1000, 20.0) == []  # ... once
    assert reports(machine.handle(FileDownloaded(0, 20.0))) == []
    assert reports(machine.handle(FileDownloaded(1, 20.0))) == [
        ("2.0", S.DOWNLOAD_STEP, "file 2 of 2, 100% (b.bin)")
    ]


def test_download_steps_of_unknown_size_are_time_limited_and_count_bytes() -> None:
    machine = in_download(url_list(files=1))

    def step(done: int, now: float) -> list[str]:
        return [m for _, _, m in reports(machine.handle(DownloadProgress(0, done, None, now)))]

    assert step(100, 1.0) == ["file 1 of 1, 100 bytes (a.bin)"]
    assert step(200, 2.9) == []
    assert step(300, 3.0) == ["file 1 of 1, 300 bytes (a.bin)"]


def test_a_tick_sends_the_latest_suppressed_progress_when_its_time_comes() -> None:
    machine = in_download(url_list(files=1))
    machine.handle(DownloadProgress(0, 0, 100, 10.0))
    assert machine.handle(DownloadProgress(0, 30, 100, 10.5)) == []
    assert machine.handle(DownloadProgress(0, 40, 100, 11.0)) == []
    assert machine.handle(Tick(11.9)) == []
    assert reports(machine.handle(Tick(12.0))) == [
        ("2.0", S.DOWNLOAD_STEP, "file 1 of 1, 40% (a.bin)")
    ]
    assert machine.handle(Tick(20.0)) == []  # nothing pending any more


def test_install_steps_are_rate_limited_and_the_latest_line_is_kept() -> None:
    machine = in_install()

    def step(line: str, now: float) -> list[str]:
        return [m for _, _, m in reports(machine.handle(InstallStep(line, now)))]

    assert step("one", 10.0) == ["one"]
    assert step("two", 11.0) == []
    assert step("three", 11.5) == []
    assert reports(machine.handle(Tick(12.0))) == [("2.0", S.INSTALL_STEP, "three")]
    assert step("four", 13.0) == []
    assert step("five", 14.0) == ["five"]


def test_the_rate_limits_are_configurable() -> None:
    policy = ProgressPolicy(min_interval=0.0, min_percent=0.0, install_step_interval=0.0)
    machine = UpdateMachine("1.0", policy)
    machine.handle(ManifestReceived(url_list(files=1), 0.0))
    machine.handle(TestResult(True, "", 0.0))
    for done in range(5):
        assert len(machine.handle(DownloadProgress(0, done, 100, 1.0))) == 1
    with pytest.raises(ValueError, match="min_percent"):
        ProgressPolicy(min_percent=-1)


def test_messages_are_one_line_and_bounded() -> None:
    machine = in_test()
    [(_, _, message)] = reports(machine.handle(TestStep("a\nb\r\n  c" + "x" * 1000, 1.0)))
    assert message.startswith("a b c")
    assert len(message) == 500
    assert "\n" not in message


def roundtrip(machine: UpdateMachine) -> UpdateMachine:
    return UpdateMachine.restore(json.loads(json.dumps(machine.snapshot())))


def test_a_restored_idle_machine_just_reports_its_version() -> None:
    machine = in_install(json_manifest())
    machine.handle(InstallFinished(True, "", 3.0))
    restored = roundtrip(machine)
    assert restored.installed_version == "3.0"
    assert restored.phase is Phase.IDLE
    assert reports(restored.handle(Boot(0.0))) == [("3.0", S.INSTALLED_VERSION, "")]
    assert restored.last_outcome == machine.last_outcome


def test_a_restart_while_testing_runs_the_checks_again() -> None:
    machine = in_test()
    restored = roundtrip(machine)
    assert restored.phase is Phase.TESTING
    assert restored.current is not None
    assert restored.current.raw == machine.current.raw  # type: ignore[union-attr]
    actions = restored.handle(Boot(0.0))
    assert reports(actions) == [
        ("1.0", S.INSTALLED_VERSION, ""),
        ("2.0", S.TEST, "resuming after a restart"),
    ]
    assert actions[-1] == RunChecks(restored.current, restored.job)
    assert restored.job > machine.job


def test_a_restart_while_downloading_resumes_the_download() -> None:
    machine = in_download()
    machine.handle(FileDownloaded(0, 3.0))
    machine.handle(DownloadProgress(1, 10, 100, 3.0))
    restored = roundtrip(machine)
    actions = restored.handle(Boot(0.0))
    assert reports(actions) == [
        ("1.0", S.INSTALLED_VERSION, ""),
        ("2.0", S.DOWNLOAD, "resuming after a restart, 1 of 3 file(s) done"),
    ]
    current = restored.current
    assert current is not None
    assert actions[-1] == StartDownload(current, restored.job, (0,))
    # Rate limits start afresh; the file done before the restart stays done.
    assert statuses(restored.handle(DownloadProgress(1, 20, 100, 0.5))) == [S.DOWNLOAD_STEP]
    assert restored.handle(DownloadProgress(0, 20, 100, 0.5)) == []
    # The connector delivers the same manifest again after the restart: ack only.
    assert received(restored, current) == [Acknowledge(current.raw)]


def test_a_restart_during_install_never_reruns_the_installer() -> None:
    restored = roundtrip(in_install())
    actions = restored.handle(Boot(0.0))
    assert actions == [
        Report(StatusReport("1.0", S.INSTALLED_VERSION, "")),
        Report(StatusReport("2.0", S.INSTALL_ERROR, INTERRUPTED_INSTALL)),
    ]
    assert restored.phase is Phase.IDLE
    assert statuses(restored.handle(Retry(1.0))) == [S.INIT, S.TEST]  # only when asked


def test_a_failure_survives_a_restart_and_can_be_retried() -> None:
    machine = in_download()
    machine.handle(DownloadFailed("HTTP 500", 3.0))
    restored = roundtrip(machine)
    assert restored.last_outcome == machine.last_outcome
    restored.handle(Boot(0.0))
    assert statuses(restored.handle(Retry(1.0))) == [S.INIT, S.TEST]


def test_a_live_boot_during_a_download_restarts_it() -> None:
    machine = in_download()
    job = machine.job
    actions = machine.handle(Boot(9.0))
    assert statuses(actions) == [S.INSTALLED_VERSION, S.DOWNLOAD]
    assert machine.handle(DownloadFinished(9.5, job=job)) == []  # the old job is gone


def test_a_saved_manifest_that_no_longer_parses_ends_with_its_phase_error() -> None:
    data = in_download().snapshot()
    data["current_raw"] = '{"version": "2.0", "name": "fw"}'
    restored = UpdateMachine.restore(data)
    assert restored.phase is Phase.IDLE
    [boot, failure] = reports(restored.handle(Boot(0.0)))
    assert boot == ("1.0", S.INSTALLED_VERSION, "")
    assert failure[:2] == ("2.0", S.DOWNLOAD_ERROR)
    assert failure[2].startswith("could not resume after a restart: ")
    assert restored.handle(Boot(1.0)) == [Report(StatusReport("1.0", S.INSTALLED_VERSION, ""))]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"format": 99}, "unknown format"),
        ({"phase": "sleeping"}, "unknown phase"),
        ({"installed_version": 2}, "'installed_version' is not a str"),
        ({"job": True}, "'job' is not a int"),
        ({"files_done": [-1]}, "files_done"),
        ({"current_raw": None}, "phase and current manifest disagree"),
        ({"last_outcome": {"version": "2", "status": "INIT", "message": ""}}, "no final status"),
        ({"last_outcome": {"version": "2", "status": "NOPE", "message": ""}}, "unknown status"),
    ],
)
def test_restore_rejects_what_is_not_a_snapshot(change: dict[str, Any], problem: str) -> None:
    data = in_download().snapshot() | change
    with pytest.raises(ValueError, match=problem):
        UpdateMachine.restore(data)
    with pytest.raises(ValueError, match="not a JSON object"):
        UpdateMachine.restore([])


def test_a_clock_that_goes_backwards_neither_floods_nor_blocks() -> None:
    machine = in_install()
    assert statuses(machine.handle(InstallStep("a", 100.0))) == [S.INSTALL_STEP]
    assert machine.handle(InstallStep("b", 5.0)) == []  # clock reset: counts from 5.0 now
    assert machine.handle(InstallStep("c", 6.0)) == []
    assert reports(machine.handle(InstallStep("d", 7.0))) == [("2.0", S.INSTALL_STEP, "d")]
