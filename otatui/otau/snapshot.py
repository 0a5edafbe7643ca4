"""The persisted state of an update machine: phase, outcome, and the snapshot format.

`MachineSnapshot.to_data()` is plain JSON-able data (a dict of str, int, list, None);
`MachineSnapshot.from_data()` reads it back, raising ValueError with one line on bad data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from otatui.otau.status import Status

SNAPSHOT_FORMAT = 1

_T = TypeVar("_T")


class Phase(StrEnum):
    """What the machine is doing for the current manifest."""

    IDLE = "idle"
    TESTING = "testing"
    DOWNLOADING = "downloading"
    INSTALLING = "installing"


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the work on a manifest ended: its final report."""

    version: str
    status: Status
    message: str

    @property
    def ok(self) -> bool:
        return self.status is Status.INSTALLED_VERSION


@dataclass(frozen=True, slots=True)
class MachineSnapshot:
    """Everything an update machine needs to go on after a restart."""

    installed_version: str
    phase: Phase
    job: int
    current_raw: str | None
    files_done: tuple[int, ...]
    last_raw: str | None
    last_outcome: Outcome | None
    boot_failure: Outcome | None

    def to_data(self) -> dict[str, Any]:
        return {
            "format": SNAPSHOT_FORMAT,
            "installed_version": self.installed_version,
            "phase": self.phase.value,
            "job": self.job,
            "current_raw": self.current_raw,
            "files_done": list(self.files_done),
            "last_raw": self.last_raw,
            "last_outcome": _outcome_data(self.last_outcome),
            "boot_failure": _outcome_data(self.boot_failure),
        }

    @classmethod
    def from_data(cls, data: object) -> MachineSnapshot:
        if not isinstance(data, dict):
            raise ValueError("machine snapshot: not a JSON object")
        reader = _Reader(data)
        if data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"machine snapshot: unknown format {data.get('format')!r}")
        snapshot = cls(
            installed_version=reader.get("installed_version", str),
            phase=reader.phase(),
            job=reader.get("job", int),
            current_raw=reader.optional("current_raw", str),
            files_done=reader.files_done(),
            last_raw=reader.optional("last_raw", str),
            last_outcome=reader.outcome("last_outcome"),
            boot_failure=reader.outcome("boot_failure"),
        )
        if (snapshot.phase is Phase.IDLE) != (snapshot.current_raw is None):
            raise ValueError("machine snapshot: phase and current manifest disagree")
        return snapshot


def _outcome_data(outcome: Outcome | None) -> dict[str, str] | None:
    if outcome is None:
        return None
    return {"version": outcome.version, "status": outcome.status.value, "message": outcome.message}


class _Reader:
    """Typed, checked reads of a snapshot dict."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def get(self, key: str, kind: type[_T]) -> _T:
        value = self._data.get(key)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise ValueError(f"machine snapshot: {key!r} is not a {kind.__name__}")
        return value

    def optional(self, key: str, kind: type[_T]) -> _T | None:
        return None if self._data.get(key) is None else self.get(key, kind)

    def phase(self) -> Phase:
        value = self.get("phase", str)
        try:
            return Phase(value)
        except ValueError:
            raise ValueError(f"machine snapshot: unknown phase {value!r}") from None

    def files_done(self) -> tuple[int, ...]:
        value = self.get("files_done", list)
        if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value):
            raise ValueError("machine snapshot: 'files_done' is not a list of file indexes")
        return tuple(sorted(set(value)))

    def outcome(self, key: str) -> Outcome | None:
        value = self.optional(key, dict)
        if value is None:
            return None
        version, status, message = value.get("version"), value.get("status"), value.get("message")
        if not isinstance(version, str) or not isinstance(message, str):
            raise ValueError(f"machine snapshot: {key!r} is not an outcome")
        if not isinstance(status, str) or status not in Status.__members__:
            raise ValueError(f"machine snapshot: {key!r} has an unknown status")
        if not Status(status).is_final:
            raise ValueError(f"machine snapshot: {key!r} has no final status")
        return Outcome(version, Status(status), message)
