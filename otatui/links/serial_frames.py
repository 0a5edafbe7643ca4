"""The control frames of the serial link (docs/serial-link.md, section 2): one JSON object per
line, UTF-8, with a string `type`, at most 65536 bytes with the newline.

`encode()` turns a frame into its line; `decode_from_device()` (used by the host) and
`decode_from_host()` (used by the device) parse a line into a typed frame, validating every field,
and raise `FrameError` with one line naming the field on anything invalid. A well-formed frame of
a type the reader does not know becomes `UnknownFrame` (the host ignores it; the device answers
with an `error` frame). `frame_text()` finds the JSON object of a line with leading garbage.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from otatui.links.serial_fields import (
    MAX_BUSY,
    MAX_FRAME,
    MAX_MESSAGE,
    MAX_SEQ,
    MAX_TEXT,
    MIN_MAX_FRAME,
    PROTOCOL,
    Fields,
    FileInfo,
    FrameError,
    check_name,
    load,
    status_of,
)
from otatui.otau.status import Status, StatusReport

__all__ = [
    "MAX_FRAME",
    "MAX_MESSAGE",
    "MIN_MAX_FRAME",
    "PROTOCOL",
    "Busy",
    "Cancel",
    "Cancelled",
    "DeviceFrame",
    "DeviceHello",
    "Echo",
    "ErrorFrame",
    "FileInfo",
    "Frame",
    "FrameError",
    "HostFrame",
    "HostHello",
    "Log",
    "ManifestFrame",
    "Ping",
    "Pong",
    "Report",
    "Send",
    "UnknownFrame",
    "check_name",
    "decode_from_device",
    "decode_from_host",
    "encode",
    "frame_dict",
    "frame_text",
]

# -- host -> device ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostHello:
    TYPE: ClassVar[str] = "hello"
    host: str
    protocol: int = PROTOCOL


@dataclass(frozen=True, slots=True)
class ManifestFrame:
    TYPE: ClassVar[str] = "manifest"
    manifest: str
    files: tuple[FileInfo, ...]


@dataclass(frozen=True, slots=True)
class Ping:
    TYPE: ClassVar[str] = "ping"
    seq: int


@dataclass(frozen=True, slots=True)
class Cancel:
    TYPE: ClassVar[str] = "cancel"
    reason: str


# -- device -> host ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceHello:
    TYPE: ClassVar[str] = "hello"
    identity: str
    version: str
    files: tuple[FileInfo, ...] = ()
    protocol: int = PROTOCOL
    max_frame: int | None = None
    time: float | None = None


@dataclass(frozen=True, slots=True)
class Echo:
    TYPE: ClassVar[str] = "echo"
    manifest: str


@dataclass(frozen=True, slots=True)
class Send:
    TYPE: ClassVar[str] = "send"
    files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Report:
    """An `otau_in` frame: the device's report, with its own time when it has a clock."""

    TYPE: ClassVar[str] = "otau_in"
    version: str
    status: Status
    message: str = ""
    time: float | None = None

    @property
    def report(self) -> StatusReport:
        return StatusReport(version=self.version, status=self.status, message=self.message)


@dataclass(frozen=True, slots=True)
class Log:
    TYPE: ClassVar[str] = "log"
    message: str


@dataclass(frozen=True, slots=True)
class Pong:
    TYPE: ClassVar[str] = "pong"
    seq: int


@dataclass(frozen=True, slots=True)
class Busy:
    TYPE: ClassVar[str] = "busy"
    seconds: int
    message: str = ""


@dataclass(frozen=True, slots=True)
class Cancelled:
    TYPE: ClassVar[str] = "cancelled"
    aborted: bool
    message: str = ""


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    TYPE: ClassVar[str] = "error"
    message: str


@dataclass(frozen=True, slots=True)
class UnknownFrame:
    """A JSON object with a `type` this side does not know (kept for a log line)."""

    type: str


HostFrame = HostHello | ManifestFrame | Ping | Cancel
DeviceFrame = DeviceHello | Echo | Send | Report | Log | Pong | Busy | Cancelled | ErrorFrame
Frame = HostFrame | DeviceFrame


# -- encoding ----------------------------------------------------------------------------------


def frame_dict(frame: Frame) -> dict[str, Any]:
    """The JSON object of a frame, `type` first, optional fields left out when unset."""
    data: dict[str, Any] = {"type": frame.TYPE}
    match frame:
        case HostHello():
            data.update(protocol=frame.protocol, host=frame.host)
        case ManifestFrame():
            data.update(manifest=frame.manifest, files=[f.to_dict() for f in frame.files])
        case Ping() | Pong():
            data.update(seq=frame.seq)
        case Cancel():
            data.update(reason=frame.reason)
        case DeviceHello():
            data.update(
                protocol=frame.protocol,
                identity=frame.identity,
                version=frame.version,
                files=[f.to_dict() for f in frame.files],
            )
            if frame.max_frame is not None:
                data["max_frame"] = frame.max_frame
            if frame.time is not None:
                data["time"] = frame.time
        case Echo():
            data.update(manifest=frame.manifest)
        case Send():
            data.update(files=list(frame.files))
        case Report():
            data.update(version=frame.version, status=frame.status.value, message=frame.message)
            if frame.time is not None:
                data["time"] = frame.time
        case Log() | ErrorFrame():
            data.update(message=frame.message)
        case Busy():
            data.update(seconds=frame.seconds, message=frame.message)
        case Cancelled():
            data.update(aborted=frame.aborted, message=frame.message)
    return data


def encode(frame: Frame, *, limit: int = MAX_FRAME) -> bytes:
    """The line of a frame: compact JSON, raw UTF-8, `\\n`. FrameError if longer than `limit`."""
    line = json.dumps(frame_dict(frame), separators=(",", ":"), ensure_ascii=False) + "\n"
    try:
        data = line.encode("utf-8")
    except UnicodeEncodeError:
        raise FrameError(f"the {frame.TYPE} frame holds text that is not valid UTF-8") from None
    if len(data) > limit:
        raise FrameError(f"the {frame.TYPE} frame is {len(data)} bytes; at most {limit} fit")
    return data


# -- decoding ----------------------------------------------------------------------------------


def frame_text(line: bytes) -> bytes | None:
    """The JSON object part of a received line (from the first `{`, without the line end);
    None when the line holds no `{` at all (a boot message, line noise)."""
    start = line.find(b"{")
    if start < 0:
        return None
    return line[start:].rstrip(b"\r\n")


def decode_from_device(line: bytes) -> DeviceFrame | UnknownFrame:
    """A frame the device sent (read by the host)."""
    data, kind = load(line)
    parser = _FROM_DEVICE.get(kind)
    return parser(Fields(data, kind)) if parser else UnknownFrame(kind)


def decode_from_host(line: bytes) -> HostFrame | UnknownFrame:
    """A frame the host sent (read by the device)."""
    data, kind = load(line)
    parser = _FROM_HOST.get(kind)
    return parser(Fields(data, kind)) if parser else UnknownFrame(kind)


_FROM_HOST: dict[str, Callable[[Fields], HostFrame]] = {
    "hello": lambda f: HostHello(host=f.message("host")[:MAX_TEXT], protocol=f.protocol()),
    "manifest": lambda f: ManifestFrame(
        manifest=f.text("manifest", limit=MAX_FRAME), files=f.files()
    ),
    "ping": lambda f: Ping(seq=f.integer("seq", 0, MAX_SEQ)),
    "cancel": lambda f: Cancel(reason=f.message("reason")),
}

_FROM_DEVICE: dict[str, Callable[[Fields], DeviceFrame]] = {
    "hello": lambda f: DeviceHello(
        identity=f.text("identity"),
        version=f.text("version"),
        files=f.files() if f.data.get("files") is not None else (),
        protocol=f.protocol(),
        max_frame=f.optional_integer("max_frame", MIN_MAX_FRAME, MAX_FRAME),
        time=f.time(),
    ),
    "echo": lambda f: Echo(manifest=f.text("manifest", limit=MAX_FRAME, empty=True)),
    "send": lambda f: Send(files=f.names()),
    "otau_in": lambda f: Report(
        version=f.text("version"), status=status_of(f), message=f.message(), time=f.time()
    ),
    "log": lambda f: Log(message=f.message()),
    "pong": lambda f: Pong(seq=f.integer("seq", 0, MAX_SEQ)),
    "busy": lambda f: Busy(seconds=f.integer("seconds", 1, MAX_BUSY), message=f.message()),
    "cancelled": lambda f: Cancelled(aborted=f.boolean("aborted"), message=f.message()),
    "error": lambda f: ErrorFrame(message=f.message()),
}
