"""How a bridged device's own reports reach the cloud, and what a link's events tell the actor.

A bridge stands in for an offline device towards the connector. Its update machine makes the
reports of what otatui does for the device (acknowledgement, checks, download into this machine's
cache: INIT .. DOWNLOAD_SUCCESS, then INSTALL when the push starts); the device then reports
what it does with the pushed update, through the link (`DeviceReport`). The cloud must see ONE
linear status flow per update (INIT -> TEST* -> DOWNLOAD* -> INSTALL -> INSTALL_STEP* -> final),
so while the push runs (the update's INSTALL phase) the device's reports are relayed as follows,
labelled with the link as their source ("serial" or "lan"):

- every non-final report of the update's version is relayed one for one (no rate limit of ours:
  the device limits its own progress) as an INSTALL_STEP (`as_install_step`): the device's own
  INSTALL_STEP as it is, any other status as `device <STATUS>: <message>` (e.g.
  `device DOWNLOAD_STEP: fw.bin 40%`, `device TEST_SUCCESS`, `device INSTALL: flashing`; otatui
  already reported INSTALL when the push started), so the device's own status stays visible in
  the message;
- a final error (TEST_ERROR, DOWNLOAD_ERROR, INSTALL_ERROR, INSTALL_ABORTED) ends the update in
  the machine, and the machine's final report is replaced by the device's own (its status and
  message): still exactly one final status for the manifest, and it names the step that failed;
- INSTALL_SUCCESS or INSTALLED_VERSION of the update's version ends it successfully through the
  machine, which writes INSTALL_SUCCESS (with the device's message) then INSTALLED_VERSION, so
  INSTALLED_VERSION is always last and never written twice (the device's own INSTALLED_VERSION
  after its INSTALL_SUCCESS finds the update already finished and is not repeated);
- a report of another version (e.g. the version it runs, sent when the link opens) is shown as
  the device's output and not relayed: it does not belong to this update.

Relayed messages are cut to `MESSAGE_LIMIT` characters. Only reports that arrive while the
machine is installing that update (the same job) are relayed; a late report of an aborted push
is dropped like any late event.

**Times.** A device report may carry the time the device made it (`DeviceReport.time`: the
serial `otau_in` frame's `time`, the local connector's record of a LAN device's write).
`DeviceClock` keeps that time when it is plausible: not more than `AHEAD_S` after the report
reached otatui (a device clock running a little ahead), not more than `BEFORE_PUSH_S` before the
push started (one running a little behind), and not earlier than the time kept for the device's
previous report of this push (order). Otherwise the report keeps the time it reached otatui.
The recorder (`otatui.engine.recorder`) then never stores it earlier than the report before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from otatui.otau import events as ev
from otatui.otau.status import Status, StatusReport

MESSAGE_LIMIT = 1000  # characters of a relayed message (a device's message may be longer)
AHEAD_S = 5.0  # a device time at most this far after the report reached otatui is kept
BEFORE_PUSH_S = 5.0  # ... and at most this far before the push started


class Relay(Enum):
    ONE_FOR_ONE = "one for one"
    SUCCESS = "success"
    FAILURE = "failure"
    OTHER_VERSION = "other version"


def relay_kind(report: StatusReport, version: str) -> Relay:
    """What becomes of a bridged device's `report` during the push of `version`."""
    if report.version != version:
        return Relay.OTHER_VERSION
    if report.status.is_error:
        return Relay.FAILURE
    if report.status in (Status.INSTALL_SUCCESS, Status.INSTALLED_VERSION):
        return Relay.SUCCESS
    return Relay.ONE_FOR_ONE


def bounded(report: StatusReport) -> StatusReport:
    """`report` with its message cut to `MESSAGE_LIMIT` characters (unchanged if it fits)."""
    if len(report.message) <= MESSAGE_LIMIT:
        return report
    return StatusReport(report.version, report.status, report.message[: MESSAGE_LIMIT - 1] + "…")


def as_install_step(report: StatusReport) -> StatusReport:
    """A device's non-final report as the INSTALL_STEP the cloud gets (see the docstring)."""
    if report.status is Status.INSTALL_STEP:
        return bounded(report)
    text = f"device {report.status.value}" + (f": {report.message}" if report.message else "")
    return bounded(StatusReport(report.version, Status.INSTALL_STEP, text))


@dataclass(frozen=True, slots=True)
class ReportTime:
    """The time kept for a device report, and where it comes from."""

    at: float
    from_device: bool  # the device's own time; else when the report reached otatui
    why: str = ""  # why the device's time was not kept ("" if it was, or if it gave none)


class DeviceClock:
    """Chooses the time of each device report of one push (see "Times" in the docstring)."""

    def __init__(self, push_started: float) -> None:
        self.push_started = push_started
        self.previous: float | None = None  # time kept for the previous report of this push
        self.refused = 0  # device times not kept so far

    def time_of(self, said: float | None, arrived: float) -> ReportTime:
        """The time to keep for a report the device says it made at `said` (None: it did not
        say) and that reached otatui at `arrived`."""
        why = _implausible(said, arrived, self.push_started, self.previous)
        kept = (
            ReportTime(arrived, from_device=False, why=why)
            if said is None or why
            else ReportTime(said, from_device=True)
        )
        self.previous = kept.at
        if kept.why:
            self.refused += 1
        return kept


def _implausible(said: float | None, arrived: float, started: float, previous: float | None) -> str:
    if said is None:
        return ""
    if not math.isfinite(said) or said < 0:
        return f"{said!r} is no time"
    if said > arrived + AHEAD_S:
        return f"{_utc(said)}, later than it reached otatui ({_utc(arrived)})"
    if said < started - BEFORE_PUSH_S:
        return f"{_utc(said)}, before the push started ({_utc(started)})"
    if previous is not None and said < previous:
        return f"{_utc(said)}, before the previous report ({_utc(previous)})"
    return ""


def _utc(t: float) -> str:
    try:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    except (OverflowError, OSError, ValueError):
        return f"{t!r}"


@dataclass(frozen=True, slots=True)
class FromLink:
    """A machine event caused by the link: the reports it leads to carry the link's source.

    `own_final`: the device's own final error report, which replaces the machine's.
    """

    event: ev.Event
    own_final: StatusReport | None = None
    at: float | None = None  # the device's (plausible) time of the report that caused it


@dataclass(frozen=True, slots=True)
class DeviceStep:
    """A non-final report of the bridged device, as relayed (an INSTALL_STEP, see above).

    `now`: the time to keep for it (`DeviceClock`).
    """

    report: StatusReport
    now: float
    job: int


QueueItem = ev.Event | FromLink | DeviceStep
"""What the session's actor takes from its queue."""
