"""The engine's bridge role against the local connector, with scripted fake links: push progress,
link state, a bridged device's reports relayed one for one as INSTALL_STEPs (one linear flow per
update in the cloud), the times they keep, its own final error, and the apply gate (confirm,
cancel while waiting, a restart while waiting)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path

import pytest
from engine_helpers import TOKENS, iter_reports, statuses, wait_status, write_config
from relay_helpers import assert_linear

from otatui.config import load_config
from otatui.connector import Connector
from otatui.engine.events import (
    AwaitingApply,
    Event,
    EventBus,
    InstallOutput,
    LinkChanged,
    PhaseChanged,
    TransferFinished,
    TransferProgress,
)
from otatui.engine.fleet import Fleet
from otatui.links.link import (
    DeviceReport,
    Finished,
    InstallEvent,
    InstallRequest,
    LinkStatus,
    Pushed,
)
from otatui.otau.status import Status, StatusReport
from otatui.store import Store

FINAL_OK = "INSTALLED_VERSION"

Script = Callable[[InstallRequest], Sequence[InstallEvent]]


class ScriptedLink:
    """A bridged device behind a link that yields a scripted sequence of events."""

    source = "serial"

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[InstallRequest] = []

    async def install(self, request: InstallRequest) -> AsyncGenerator[InstallEvent, None]:
        self.requests.append(request)
        for item in self.script(request):
            await asyncio.sleep(0.01)
            yield item


def device_flow(request: InstallRequest) -> list[InstallEvent]:
    """A device that takes the file and reports its own flow up to its new version."""
    v = request.manifest.version
    size = request.files[0].stat().st_size
    return [
        LinkStatus("opening", "/dev/ttyUSB0"),
        LinkStatus("connected", "hello from s0001"),
        DeviceReport(StatusReport("1.0.0", Status.INSTALLED_VERSION)),  # its current version
        DeviceReport(StatusReport(v, Status.INIT, "manifest accepted")),
        DeviceReport(StatusReport(v, Status.TEST_SUCCESS)),
        LinkStatus("transferring"),
        Pushed("sensor.bin", 0, 1, 0, size),
        Pushed("sensor.bin", 0, 1, size // 2, size),
        Pushed("sensor.bin", 0, 1, size, size),
        DeviceReport(StatusReport(v, Status.DOWNLOAD_STEP, "file 1 of 1, 100%")),
        DeviceReport(StatusReport(v, Status.DOWNLOAD_SUCCESS, "verified")),
        LinkStatus("installing"),
        DeviceReport(StatusReport(v, Status.INSTALL, "flashing")),
        DeviceReport(StatusReport(v, Status.INSTALL_STEP, "writing flash 50%")),
        DeviceReport(StatusReport(v, Status.INSTALL_STEP, "writing flash 100%")),
        DeviceReport(StatusReport(v, Status.INSTALL_SUCCESS, "flashed")),
        DeviceReport(StatusReport(v, Status.INSTALLED_VERSION)),
        Finished(True, "device rebooted"),
        LinkStatus("closed"),
    ]


def failing_flow(request: InstallRequest) -> list[InstallEvent]:
    v = request.manifest.version
    return [
        DeviceReport(StatusReport(v, Status.DOWNLOAD_STEP, "file 1 of 1, 50%")),
        DeviceReport(StatusReport(v, Status.DOWNLOAD_ERROR, "crc mismatch in block 7")),
        Finished(False, "crc mismatch in block 7"),
    ]


@pytest.fixture
async def connector():  # type: ignore[no-untyped-def]
    c = Connector(devices=list(TOKENS.items()))
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


def bridge_config(tmp_path: Path, connector: Connector, **extra: object) -> Path:
    device: dict[str, object] = {
        "name": "sensor-1", "identity": "a0001", "token": TOKENS["a0001"], "protocol": "mqtt",
        "role": "bridge", "installed_version": "1.0.0", "link": "serial:/dev/ttyUSB0",
    }  # fmt: skip
    device.update(extra)
    return write_config(
        tmp_path / "site.toml",
        connector,
        [device],
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
    )


def manifest(version: str) -> dict[str, object]:
    return {"version": version, "name": "s", "type": "FILE", "payload": "sensor.bin"}


def history(tmp_path: Path, version: str) -> list[tuple[str | None, str]]:
    with Store.open_readonly(tmp_path / "data" / "otatui.db") as store:
        return [
            (r.status, r.source)
            for r in store.iter_history(device="sensor-1")
            if r.resource == "otau_in" and r.version == version
        ]


async def until(seen: list[Event], predicate: Callable[[Event], bool], timeout: float = 15) -> None:
    async def wait() -> None:
        while not any(predicate(e) for e in seen):
            await asyncio.sleep(0.02)

    await asyncio.wait_for(wait(), timeout)


async def test_push_progress_link_state_and_the_device_reports_one_for_one_as_install_steps(
    tmp_path: Path, connector: Connector
) -> None:
    connector.add_content("sensor.bin", b"sensor firmware " * 1000)
    link = ScriptedLink(device_flow)
    seen: list[Event] = []
    bus = EventBus()
    bus.subscribe(seen.append)
    config = load_config(bridge_config(tmp_path, connector))
    async with Fleet(config, bus=bus, link_factory=lambda d: link, request_timeout_ms=5_000) as f:
        f.start()
        await wait_status(connector, "a0001", "1.0.0", FINAL_OK)
        connector.set_config_otau("a0001", manifest("2.1.0"))
        await wait_status(connector, "a0001", "2.1.0", FINAL_OK)
        await asyncio.sleep(0.3)  # anything after the final status would show up now
    flow = [(r["status"], r["message"]) for r in iter_reports(connector, "a0001")]
    flow = flow[flow.index(("INIT", "starting update to 2.1.0 (s)")) :]
    # One linear flow: otatui's own reports (checks, download to this machine, INSTALL), then
    # the device's, one for one, as INSTALL_STEPs that name the device's own status.
    assert_linear([s for s, _ in flow])
    install = [s for s, _ in flow].index("INSTALL")
    ours, theirs = flow[: install + 1], flow[install + 1 :]
    assert [s for s, _ in ours][:4] == ["INIT", "TEST", "TEST_STEP", "TEST_SUCCESS"]
    assert [s for s, _ in ours][-2:] == ["DOWNLOAD_SUCCESS", "INSTALL"]
    pushing = [m for s, m in theirs if m.startswith("pushing file 1 of 1")]
    assert pushing and all(m.endswith("% (sensor.bin)") for m in pushing)  # the push, ours
    assert [(s, m) for s, m in theirs if not m.startswith("pushing file")] == [
        ("INSTALL_STEP", "device INIT: manifest accepted"),
        ("INSTALL_STEP", "device TEST_SUCCESS"),
        ("INSTALL_STEP", "device DOWNLOAD_STEP: file 1 of 1, 100%"),
        ("INSTALL_STEP", "device DOWNLOAD_SUCCESS: verified"),
        ("INSTALL_STEP", "device INSTALL: flashing"),
        ("INSTALL_STEP", "writing flash 50%"),
        ("INSTALL_STEP", "writing flash 100%"),
        ("INSTALL_SUCCESS", "flashed"),
        ("INSTALLED_VERSION", ""),
    ]
    # Sources: what the link brought says "serial"; what otatui did itself, the protocol.
    rows = history(tmp_path, "2.1.0")
    assert rows[: install + 1] == [(s, "mqtt") for s, _ in ours]
    assert all(source == "serial" for _, source in rows[install + 1 :])
    # Engine events: link states, push progress and the file's push finished.
    states = [e.state for e in seen if isinstance(e, LinkChanged)]
    assert states == ["opening", "connected", "transferring", "installing", "closed"]
    assert all(e.link == "serial" for e in seen if isinstance(e, LinkChanged))
    pushes = [e for e in seen if isinstance(e, TransferProgress) and e.direction == "push"]
    assert [p.done for p in pushes][-1] == pushes[-1].total == 16000
    done = [e for e in seen if isinstance(e, TransferFinished) and e.direction == "push"]
    assert len(done) == 1 and done[0].ok and done[0].file == "sensor.bin"
    lines = [e.line for e in seen if isinstance(e, InstallOutput) and e.stream == "device"]
    assert "INSTALLED_VERSION 1.0.0" in lines  # another version: shown, not relayed
    assert sum(1 for r in iter_reports(connector, "a0001") if r["version"] == "1.0.0") == 1


async def test_the_device_own_final_error_is_the_final_status(
    tmp_path: Path, connector: Connector
) -> None:
    connector.add_content("sensor.bin", b"sensor firmware")
    link = ScriptedLink(failing_flow)
    config = load_config(bridge_config(tmp_path, connector))
    async with Fleet(config, link_factory=lambda d: link, request_timeout_ms=5_000) as fleet:
        fleet.start()
        await wait_status(connector, "a0001", "1.0.0", FINAL_OK)
        connector.set_config_otau("a0001", manifest("2.2.0"))
        await wait_status(connector, "a0001", "2.2.0", "DOWNLOAD_ERROR")
        await asyncio.sleep(0.3)
    reports = [r for r in iter_reports(connector, "a0001") if r["version"] == "2.2.0"]
    finals = [r for r in reports if Status(r["status"]).is_final]
    assert finals == [
        {"version": "2.2.0", "status": "DOWNLOAD_ERROR", "message": "crc mismatch in block 7"}
    ]
    assert reports[-1] == finals[0]
    assert_linear([r["status"] for r in reports])  # an error during INSTALL ends the flow
    assert {"version": "2.2.0", "status": "INSTALL_STEP",
            "message": "device DOWNLOAD_STEP: file 1 of 1, 50%"} in reports  # fmt: skip
    assert ("DOWNLOAD_ERROR", "serial") in history(tmp_path, "2.2.0")


async def test_each_device_report_keeps_its_own_time_when_plausible(
    tmp_path: Path, connector: Connector
) -> None:
    started: list[float] = []

    def timed_flow(request: InstallRequest) -> list[InstallEvent]:
        v, t0 = request.manifest.version, time.time()
        started.append(t0)

        def report(status: Status, message: str, said: float | None) -> DeviceReport:
            return DeviceReport(StatusReport(v, status, message), time=said)

        return [
            report(Status.INIT, "right clock", t0 + 0.001),
            report(Status.TEST, "clock of 1970", 1000.0),  # before the push started
            report(Status.TEST_SUCCESS, "an hour ahead", t0 + 3600),  # in the future
            report(Status.DOWNLOAD, "before the previous", t0 + 0.002),
            report(Status.DOWNLOAD_STEP, "no clock", None),
            report(Status.DOWNLOAD_SUCCESS, "a second ahead", t0 + 1.0),  # within the skew
            report(Status.INSTALL_STEP, "flashing", t0 + 1.1),
            report(Status.INSTALLED_VERSION, "", t0 + 1.2),
            Finished(True),
        ]

    connector.add_content("sensor.bin", b"sensor firmware")
    seen: list[Event] = []
    bus = EventBus()
    bus.subscribe(seen.append)
    config = load_config(bridge_config(tmp_path, connector))
    link = ScriptedLink(timed_flow)
    async with Fleet(config, bus=bus, link_factory=lambda d: link, request_timeout_ms=5_000) as f:
        f.start()
        await wait_status(connector, "a0001", "1.0.0", FINAL_OK)
        connector.set_config_otau("a0001", manifest("2.8.0"))
        await wait_status(connector, "a0001", "2.8.0", FINAL_OK)
        ended = time.time()
    [t0] = started
    with Store.open_readonly(tmp_path / "data" / "otatui.db") as store:
        rows = [
            r
            for r in store.iter_history(device="sensor-1")
            if r.resource == "otau_in" and r.version == "2.8.0"
        ]
        kept = {json.loads(r.value)["message"]: r.time for r in rows if r.source == "serial"}
    times = [r.time for r in rows]
    assert times == sorted(times)  # in order, whatever the device's clock said
    assert kept["device INIT: right clock"] == pytest.approx(t0 + 0.001, abs=1e-6)
    for arrived in (
        "device TEST: clock of 1970",
        "device TEST_SUCCESS: an hour ahead",
        "device DOWNLOAD: before the previous",
        "device DOWNLOAD_STEP: no clock",
    ):  # when the report reached otatui
        assert t0 + 0.002 < kept[arrived] < ended, arrived
    assert kept["device DOWNLOAD_SUCCESS: a second ahead"] == pytest.approx(t0 + 1.0, abs=1e-6)
    assert kept["flashing"] == pytest.approx(t0 + 1.1, abs=1e-6)
    # The final status goes through the update machine: stamped when it came, after the rest.
    assert rows[-1].status == FINAL_OK and rows[-1].time >= t0 + 1.1
    notes = [
        e.line for e in seen if isinstance(e, InstallOutput) and "is not kept" in e.line
    ]  # said once per push, for the first implausible time
    assert len(notes) == 1
    assert notes[0].startswith(
        "the device's time of its TEST is not kept (1970-01-01 00:16:40.000 UTC, before the push"
        " started (20"
    )
    assert notes[0].endswith("a report with an implausible time keeps the time it reached otatui")


async def test_apply_confirm_waits_for_the_technician(tmp_path: Path, connector: Connector) -> None:
    connector.add_content("sensor.bin", b"sensor firmware")
    link = ScriptedLink(device_flow)
    seen: list[Event] = []
    bus = EventBus()
    bus.subscribe(seen.append)
    config = load_config(bridge_config(tmp_path, connector, apply="confirm"))
    async with Fleet(config, bus=bus, link_factory=lambda d: link, request_timeout_ms=5_000) as f:
        f.start()
        await wait_status(connector, "a0001", "1.0.0", FINAL_OK)
        connector.set_config_otau("a0001", manifest("2.3.0"))
        await until(seen, lambda e: isinstance(e, AwaitingApply) and e.version == "2.3.0")
        await asyncio.sleep(0.5)
        assert link.requests == []  # nothing pushed before the technician applies it
        assert ("2.3.0", "INSTALL") not in statuses(connector, "a0001")
        assert f.session("sensor-1").awaiting_apply == "2.3.0"
        assert f.apply("sensor-1")
        await wait_status(connector, "a0001", "2.3.0", FINAL_OK)
        assert len(link.requests) == 1
        assert not f.apply("sensor-1")  # nothing waits any more


async def test_cancel_while_waiting_for_apply_aborts(tmp_path: Path, connector: Connector) -> None:
    connector.add_content("sensor.bin", b"sensor firmware")
    link = ScriptedLink(device_flow)
    seen: list[Event] = []
    bus = EventBus()
    bus.subscribe(seen.append)
    config = load_config(bridge_config(tmp_path, connector, apply="confirm"))
    async with Fleet(config, bus=bus, link_factory=lambda d: link, request_timeout_ms=5_000) as f:
        f.start()
        await wait_status(connector, "a0001", "1.0.0", FINAL_OK)
        connector.set_config_otau("a0001", manifest("2.4.0"))
        await until(seen, lambda e: isinstance(e, AwaitingApply))
        f.cancel("sensor-1")
        await wait_status(connector, "a0001", "2.4.0", "INSTALL_ABORTED")
        await until(seen, lambda e: isinstance(e, PhaseChanged) and e.phase == "idle")
        assert f.session("sensor-1").awaiting_apply is None
    assert link.requests == []
    flow = [s for v, s in statuses(connector, "a0001") if v == "2.4.0"]
    assert "INSTALL" not in flow and flow[-1] == "INSTALL_ABORTED"


async def test_a_restart_while_waiting_for_apply_waits_again_honestly(
    tmp_path: Path, connector: Connector
) -> None:
    connector.add_content("sensor.bin", b"sensor firmware")
    link = ScriptedLink(device_flow)
    config = load_config(bridge_config(tmp_path, connector, apply="confirm"))
    for attempt in range(2):
        seen: list[Event] = []
        bus = EventBus()
        bus.subscribe(seen.append)
        async with Fleet(
            config, bus=bus, link_factory=lambda d: link, request_timeout_ms=5_000
        ) as fleet:
            fleet.start()
            if attempt == 0:
                await wait_status(connector, "a0001", "1.0.0", FINAL_OK)
                connector.set_config_otau("a0001", manifest("2.5.0"))
            await until(seen, lambda e: isinstance(e, AwaitingApply) and e.version == "2.5.0")
            if attempt == 1:
                fleet.apply("sensor-1")
                await wait_status(connector, "a0001", "2.5.0", FINAL_OK)
    flow = [s for v, s in statuses(connector, "a0001") if v == "2.5.0"]
    # Nothing was installed before the restart, and nothing says otherwise: no INSTALL_ERROR,
    # one INSTALL (after the apply), the download resumed from the cache.
    assert "INSTALL_ERROR" not in flow and flow.count("INSTALL") == 1
    assert flow.count("DOWNLOAD") == 2 and flow[-1] == FINAL_OK
    assert len(link.requests) == 1
    resumed = [
        r["message"]
        for r in iter_reports(connector, "a0001")
        if r["status"] == "DOWNLOAD" and r["version"] == "2.5.0"
    ]
    assert resumed[1].startswith("resuming after a restart")


async def test_history_marks_what_has_not_reached_the_cloud(
    tmp_path: Path, connector: Connector
) -> None:
    from otatui.engine.export import row_dict

    connector.add_content("sensor.bin", b"sensor firmware")
    link = ScriptedLink(device_flow)
    config = load_config(bridge_config(tmp_path, connector))
    async with Fleet(config, link_factory=lambda d: link, request_timeout_ms=5_000) as fleet:
        fleet.start()
        await wait_status(connector, "a0001", "1.0.0", FINAL_OK)
        connector.set_config_otau("a0001", manifest("2.6.0"))
        await wait_status(connector, "a0001", "2.6.0", FINAL_OK)
        await asyncio.sleep(0.2)
    with Store.open_readonly(tmp_path / "data" / "otatui.db") as store:
        rows = [row_dict(r) for r in store.iter_history(device="sensor-1")]
    out = [r for r in rows if r["direction"] == "out" and r["resource"] == "otau_in"]
    assert {r["cloud"] for r in out} == {"sent"}
    assert {r["source"] for r in out} == {"mqtt", "serial"}
    values = [r["value"] for r in out]
    assert values == [
        json.dumps(r, separators=(",", ":")) for r in iter_reports(connector, "a0001")
    ]


class BrokenLink:
    """A link with a bug: it raises instead of ending with `Finished`."""

    source = "serial"

    async def install(self, request: InstallRequest) -> AsyncGenerator[InstallEvent, None]:
        yield Pushed("sensor.bin", 0, 1, 1, 10)
        raise RuntimeError("port vanished")


async def test_a_link_that_raises_ends_in_install_error_not_a_hang(
    tmp_path: Path, connector: Connector
) -> None:
    connector.add_content("sensor.bin", b"sensor firmware")
    seen: list[Event] = []
    bus = EventBus()
    bus.subscribe(seen.append)
    config = load_config(bridge_config(tmp_path, connector))
    async with Fleet(
        config, bus=bus, link_factory=lambda d: BrokenLink(), request_timeout_ms=5_000
    ) as fleet:
        fleet.start()
        await wait_status(connector, "a0001", "1.0.0", FINAL_OK)
        connector.set_config_otau("a0001", manifest("2.7.0"))
        await wait_status(connector, "a0001", "2.7.0", "INSTALL_ERROR")
    error = [r for r in iter_reports(connector, "a0001") if r["status"] == "INSTALL_ERROR"]
    assert error[0]["message"] == "the serial link failed: port vanished"
    failed = [e for e in seen if isinstance(e, TransferFinished) and e.direction == "push"]
    assert len(failed) == 1 and not failed[0].ok
