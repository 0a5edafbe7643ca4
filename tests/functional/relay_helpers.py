"""Checks of what a bridge relays: the cloud's status flow of one update is linear (the OTAU
sequence of murano-device-api.md 5.1), and the device's reports map to what the cloud got."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence

from otatui.engine.relay import as_install_step
from otatui.otau.status import Status, StatusReport

_ERROR = "(TEST_ERROR|DOWNLOAD_ERROR|INSTALL_ERROR|INSTALL_ABORTED) "  # ends any phase
_INSTALL = f"INSTALL (INSTALL_STEP )*(INSTALL_SUCCESS INSTALLED_VERSION |{_ERROR})"
_DOWNLOAD = f"DOWNLOAD (DOWNLOAD_STEP )*(DOWNLOAD_SUCCESS ({_INSTALL}|{_ERROR})|{_ERROR})"
_TEST = f"TEST (TEST_STEP )*(TEST_SUCCESS ({_DOWNLOAD}|{_ERROR})|{_ERROR})"
LINEAR = re.compile(f"INIT ({_TEST}|{_ERROR})")


def assert_linear(statuses: Sequence[str]) -> None:
    """`statuses`, one update's flow from its INIT, follow the documented OTAU sequence once."""
    flow = " ".join(statuses) + " "
    assert LINEAR.fullmatch(flow), f"not one linear OTAU flow: {flow}"


def update_flow(values: Iterable[str], version: str) -> list[str]:
    """The statuses of the update to `version` in `otau_in` values (JSON texts), in order: from
    its INIT to its first final status (a later boot report of that version is not part of it)."""
    flow: list[str] = []
    for value in values:
        report = json.loads(value)
        if report["version"] != version or (not flow and report["status"] != "INIT"):
            continue
        flow.append(report["status"])
        if Status(report["status"]).is_final:
            break
    return flow


def device_frames(
    trace: Iterable[tuple[str, str]], version: str
) -> list[tuple[StatusReport, float]]:
    """The non-final `otau_in` frames the simulated serial device sent for `version`, with the
    time each frame carried."""
    out = []
    for kind, text in trace:
        if kind != "send":
            continue
        frame = json.loads(text)
        if frame.get("type") != "otau_in" or frame["version"] != version:
            continue
        status = Status(frame["status"])
        if status.is_final or status is Status.INSTALL_SUCCESS:
            continue
        out.append((StatusReport(version, status, frame.get("message", "")), frame["time"]))
    return out


def relayed_value(report: StatusReport) -> str:
    """The `otau_in` text the cloud gets for a device's non-final report."""
    return as_install_step(report).to_json()


def assert_device_times(
    rows: Sequence[tuple[str, float, str]], made: Sequence[tuple[str, float]], source: str
) -> None:
    """Every report the device made is among a device's `otau_in` history `rows` ((value, time,
    source), oldest first) once, in order, with the time the device gave it (`made`: (relayed
    value, the device's time)), or with the time of the row before it if that is later (the
    recorder keeps the order)."""
    pending = list(made)
    previous: float | None = None
    for value, at, src in rows:
        if pending and src == source and value == pending[0][0]:
            said = pending.pop(0)[1]
            expected = said if previous is None else max(said, previous)
            assert abs(at - expected) < 1e-6, (value, at, said, previous)
        previous = at
    assert not pending, f"not relayed in order: {pending}"
