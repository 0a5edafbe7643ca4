"""The `otau_in` side of the contract: the 15 statuses and the report a device writes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    """Every status of the Exosite OTA update schema, in the order of the normal flow."""

    INIT = "INIT"
    TEST = "TEST"
    TEST_STEP = "TEST_STEP"
    TEST_ERROR = "TEST_ERROR"
    TEST_SUCCESS = "TEST_SUCCESS"
    DOWNLOAD = "DOWNLOAD"
    DOWNLOAD_STEP = "DOWNLOAD_STEP"
    DOWNLOAD_SUCCESS = "DOWNLOAD_SUCCESS"
    DOWNLOAD_ERROR = "DOWNLOAD_ERROR"
    INSTALL = "INSTALL"
    INSTALL_STEP = "INSTALL_STEP"
    INSTALL_ABORTED = "INSTALL_ABORTED"
    INSTALL_ERROR = "INSTALL_ERROR"
    INSTALL_SUCCESS = "INSTALL_SUCCESS"
    INSTALLED_VERSION = "INSTALLED_VERSION"

    @property
    def is_error(self) -> bool:
        return self in _ERRORS

    @property
    def is_step(self) -> bool:
        """A progress report that may be rate-limited."""
        return self in _STEPS

    @property
    def is_final(self) -> bool:
        """Ends the work on a manifest (success, failure or abort)."""
        return self in _FINAL

    @property
    def meaning(self) -> str:
        """What the status says, in plain words (for the help screen and tooltips)."""
        return _MEANINGS[self]


_ERRORS = frozenset(
    {Status.TEST_ERROR, Status.DOWNLOAD_ERROR, Status.INSTALL_ERROR, Status.INSTALL_ABORTED}
)
_STEPS = frozenset({Status.TEST_STEP, Status.DOWNLOAD_STEP, Status.INSTALL_STEP})
_FINAL = _ERRORS | {Status.INSTALLED_VERSION}

_MEANINGS = {
    Status.INIT: "the device accepted a new manifest and is starting",
    Status.TEST: "checking the device can take the update (space, addresses)",
    Status.TEST_STEP: "one check of the test phase",
    Status.TEST_ERROR: "a check failed or the manifest is invalid; nothing was changed",
    Status.TEST_SUCCESS: "all checks passed",
    Status.DOWNLOAD: "downloading the payload files",
    Status.DOWNLOAD_STEP: "download progress (file i of n, percent)",
    Status.DOWNLOAD_SUCCESS: "all files downloaded and verified",
    Status.DOWNLOAD_ERROR: "a file could not be downloaded or failed verification",
    Status.INSTALL: "installing the update",
    Status.INSTALL_STEP: "install progress reported by the installer",
    Status.INSTALL_ABORTED: "the update was cancelled or replaced by a newer one",
    Status.INSTALL_ERROR: "the installer failed; the device keeps its old version",
    Status.INSTALL_SUCCESS: "the installer finished successfully",
    Status.INSTALLED_VERSION: "the version the device runs now (after an update and on boot)",
}


@dataclass(frozen=True, slots=True)
class StatusReport:
    """One `otau_in` value: what the device writes, as the exact JSON text."""

    version: str
    status: Status
    message: str = ""

    def to_json(self) -> str:
        """The exact text written to `otau_in` (compact, key order version/status/message)."""
        return json.dumps(
            {"version": self.version, "status": self.status.value, "message": self.message},
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> StatusReport:
        """Parse an `otau_in` value written by a device (ours or a bridged one).

        Raises ValueError with a one-line reason on anything that is not a valid report.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"otau_in is not JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise ValueError("otau_in is not a JSON object")
        version, status, message = data.get("version"), data.get("status"), data.get("message", "")
        if not isinstance(version, str):
            raise ValueError("otau_in has no string 'version'")
        if not isinstance(status, str) or status not in Status.__members__:
            raise ValueError(f"otau_in has an unknown status {status!r}")
        if message is None:
            message = ""
        if not isinstance(message, str):
            raise ValueError("otau_in 'message' is not a string")
        return cls(version=version, status=Status(status), message=message)
