"""How a bridged device's own reports reach the cloud, and what a link's events tell the actor.

A bridge stands in for an offline device towards the connector. Its update machine makes the
reports of what otatui does for the device (acknowledgement, checks, download into this machine's
cache: INIT .. DOWNLOAD_SUCCESS, then INSTALL when the push starts); the device then reports
what it does with the pushed update, through the link (`DeviceReport`). Those reports are
relayed to the cloud as follows (labelled with the link as their source, "serial" or "lan"):

- every non-final report of the update's version (INIT, TEST*, DOWNLOAD, DOWNLOAD_STEP,
  DOWNLOAD_SUCCESS, INSTALL, INSTALL_STEP) is relayed one for one: the device's exact status
  and message, timestamped when the link delivered it, with no rate limit of ours (the device
  limits its own progress);
- a final error (TEST_ERROR, DOWNLOAD_ERROR, INSTALL_ERROR, INSTALL_ABORTED) ends the update in
  the machine, and the machine's final report is replaced by the device's own (its status and
  message): still exactly one final status for the manifest;
- INSTALL_SUCCESS or INSTALLED_VERSION of the update's version ends it successfully through the
  machine, which writes INSTALL_SUCCESS (with the device's message) then INSTALLED_VERSION, so
  INSTALLED_VERSION is always last and never written twice (the device's own INSTALLED_VERSION
  after its INSTALL_SUCCESS finds the update already finished and is not repeated);
- a report of another version (e.g. the version it runs, sent when the link opens) is shown as
  the device's output and not relayed: it does not belong to this update.

Only reports that arrive while the machine is installing that update (the same job) are relayed;
a late report of an aborted push is dropped like any late event.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from otatui.otau import events as ev
from otatui.otau.status import Status, StatusReport


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


@dataclass(frozen=True, slots=True)
class FromLink:
    """A machine event caused by the link: the reports it leads to carry the link's source.

    `own_final`: the device's own final error report, which replaces the machine's.
    """

    event: ev.Event
    own_final: StatusReport | None = None


@dataclass(frozen=True, slots=True)
class DeviceStep:
    """A non-final report of the bridged device, to be relayed one for one (see above)."""

    report: StatusReport
    now: float
    job: int


QueueItem = ev.Event | FromLink | DeviceStep
"""What the session's actor takes from its queue."""
