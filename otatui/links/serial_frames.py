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
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from otatui.otau.status import Status, StatusReport
from otatui.otau.strict_json import encodable, json_type_name, loads_strict

PROTOCOL = 1
MAX_FRAME = 65536  # bytes of one line, newline included
MIN_MAX_FRAME = 512  # the smallest `max_frame` a device may announce
MAX_TEXT = 200  # characters of identity, version, host
MAX_MESSAGE = 1000  # characters of message/reason (longer ones are cut)
MAX_FILES = 100
MAX_NAME_BYTES = 255
MAX_SEQ = 2**31 - 1
MAX_BUSY = 600
_HEX64 = re.compile(r"[0-9a-f]{64}")


class FrameError(ValueError):
    """A line is not a valid frame; `str()` is one line saying why."""


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A payload file as the frames name it."""

    name: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


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
    data, kind = _load(line)
    parser = _FROM_DEVICE.get(kind)
    return parser(_Fields(data, kind)) if parser else UnknownFrame(kind)


def decode_from_host(line: bytes) -> HostFrame | UnknownFrame:
    """A frame the host sent (read by the device)."""
    data, kind = _load(line)
    parser = _FROM_HOST.get(kind)
    return parser(_Fields(data, kind)) if parser else UnknownFrame(kind)


def _load(line: bytes) -> tuple[dict[str, Any], str]:
    if len(line) > MAX_FRAME:
        raise FrameError(f"frame of {len(line)} bytes is longer than {MAX_FRAME}")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FrameError(f"frame is not UTF-8 (byte {exc.start})") from None
    try:
        parsed = loads_strict(text)
    except json.JSONDecodeError as exc:
        raise FrameError(f"frame is not JSON: {exc.msg} at character {exc.pos}") from None
    except (ValueError, RecursionError):
        raise FrameError("frame is not JSON (too deeply nested)") from None
    data = parsed.value
    if not isinstance(data, dict):
        raise FrameError(f"frame is {json_type_name(data)}, not a JSON object")
    if parsed.duplicates:
        raise FrameError(f"frame has the key {parsed.duplicates[0][0]!r} twice")
    if parsed.bad_number:
        raise FrameError(f"frame has the number {parsed.bad_number[:20]!r}, which JSON forbids")
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise FrameError("frame has no string 'type'")
    return data, kind


class _Fields:
    """Typed access to the fields of one frame; errors name the frame type and the field."""

    def __init__(self, data: Mapping[str, Any], kind: str) -> None:
        self.data = data
        self.kind = kind

    def fail(self, key: str, why: str) -> FrameError:
        return FrameError(f"{self.kind} frame: {key!r} {why}")

    def text(self, key: str, *, limit: int = MAX_TEXT, empty: bool = False) -> str:
        value = self.data.get(key)
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, not {json_type_name(value)}")
        if not encodable(value):
            raise self.fail(key, "holds a lone surrogate (not UTF-8)")
        if not empty and not value.strip():
            raise self.fail(key, "is empty")
        if len(value) > limit:
            raise self.fail(key, f"is longer than {limit} characters")
        return value

    def message(self, key: str = "message") -> str:
        """Free text: missing or null means "", longer than MAX_MESSAGE is cut."""
        if self.data.get(key) is None:
            return ""
        return self.text(key, limit=2**31, empty=True)[:MAX_MESSAGE]

    def integer(self, key: str, low: int, high: int) -> int:
        value = self.data.get(key)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(key, f"must be an integer, not {json_type_name(value)}")
        if not low <= value <= high:
            raise self.fail(key, f"must be between {low} and {high}, not {value}")
        return value

    def optional_integer(self, key: str, low: int, high: int) -> int | None:
        return None if self.data.get(key) is None else self.integer(key, low, high)

    def time(self) -> float | None:
        value = self.data.get("time")
        if value is None:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.fail("time", f"must be a number, not {json_type_name(value)}")
        if not math.isfinite(value) or value < 0:
            raise self.fail("time", "must be seconds since 1970 (0 or more)")
        return float(value)

    def boolean(self, key: str) -> bool:
        value = self.data.get(key)
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, not {json_type_name(value)}")
        return value

    def array(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if not isinstance(value, list):
            raise self.fail(key, f"must be an array, not {json_type_name(value)}")
        if len(value) > MAX_FILES:
            raise self.fail(key, f"has more than {MAX_FILES} entries")
        return value

    def names(self, key: str = "files") -> tuple[str, ...]:
        names = tuple(check_name(n, f"{self.kind} frame: {key!r}") for n in self.array(key))
        _no_duplicates(names, self, key)
        return names

    def files(self, key: str = "files") -> tuple[FileInfo, ...]:
        result = []
        for position, entry in enumerate(self.array(key), 1):
            where = f"{self.kind} frame: file {position}"
            if not isinstance(entry, dict):
                raise FrameError(f"{where} must be an object, not {json_type_name(entry)}")
            sub = _Fields(entry, where)
            name = check_name(entry.get("name"), where)
            size = sub.integer("size", 0, 2**63 - 1)
            digest = entry.get("sha256")
            if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
                raise FrameError(f"{where}: 'sha256' must be 64 lowercase hex digits")
            result.append(FileInfo(name=name, size=size, sha256=digest))
        _no_duplicates(tuple(f.name for f in result), self, key)
        return tuple(result)

    def protocol(self) -> int:
        return self.integer("protocol", 1, MAX_SEQ)


def check_name(value: object, where: str) -> str:
    """A file name as the protocol allows it (section 2.3); FrameError otherwise."""
    if not isinstance(value, str):
        raise FrameError(f"{where}: the name must be a string, not {json_type_name(value)}")
    if not value or value in (".", "..") or value.startswith("."):
        raise FrameError(f"{where}: the name {value[:60]!r} is empty or starts with a dot")
    if any(ch in "/\\\0" or not (ch.isprintable() or ch == " ") for ch in value):
        raise FrameError(f"{where}: the name {value[:60]!r} has a separator or control character")
    if not encodable(value) or len(value.encode("utf-8")) > MAX_NAME_BYTES:
        raise FrameError(f"{where}: the name is longer than {MAX_NAME_BYTES} bytes or not UTF-8")
    return value


def _no_duplicates(names: tuple[str, ...], fields: _Fields, key: str) -> None:
    folded = [n.casefold() for n in names]
    for name in names:
        if folded.count(name.casefold()) > 1:
            raise fields.fail(key, f"names {name[:60]!r} twice")


def _status(fields: _Fields) -> Status:
    value = fields.data.get("status")
    if not isinstance(value, str) or value not in Status.__members__:
        shown = value[:40] if isinstance(value, str) else json_type_name(value)
        raise fields.fail("status", f"is not one of the 15 statuses: {shown!r}")
    return Status(value)


_FROM_HOST: dict[str, Callable[[_Fields], HostFrame]] = {
    "hello": lambda f: HostHello(host=f.message("host")[:MAX_TEXT], protocol=f.protocol()),
    "manifest": lambda f: ManifestFrame(
        manifest=f.text("manifest", limit=MAX_FRAME), files=f.files()
    ),
    "ping": lambda f: Ping(seq=f.integer("seq", 0, MAX_SEQ)),
    "cancel": lambda f: Cancel(reason=f.message("reason")),
}

_FROM_DEVICE: dict[str, Callable[[_Fields], DeviceFrame]] = {
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
        version=f.text("version"), status=_status(f), message=f.message(), time=f.time()
    ),
    "log": lambda f: Log(message=f.message()),
    "pong": lambda f: Pong(seq=f.integer("seq", 0, MAX_SEQ)),
    "busy": lambda f: Busy(seconds=f.integer("seconds", 1, MAX_BUSY), message=f.message()),
    "cancelled": lambda f: Cancelled(aborted=f.boolean("aborted"), message=f.message()),
    "error": lambda f: ErrorFrame(message=f.message()),
}
