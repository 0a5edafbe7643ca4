"""The field rules of the serial link's frames (docs/serial-link.md, section 2.3): limits,
`FrameError`, `FileInfo`, and `Fields`, the validating reader of one frame's JSON object whose
errors are one line naming the frame type and the field."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from otatui.otau.status import Status
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


def load(line: bytes) -> tuple[dict[str, Any], str]:
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


class Fields:
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
            sub = Fields(entry, where)
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


def _no_duplicates(names: tuple[str, ...], fields: Fields, key: str) -> None:
    folded = [n.casefold() for n in names]
    for name in names:
        if folded.count(name.casefold()) > 1:
            raise fields.fail(key, f"names {name[:60]!r} twice")


def status_of(fields: Fields) -> Status:
    value = fields.data.get("status")
    if not isinstance(value, str) or value not in Status.__members__:
        shown = value[:40] if isinstance(value, str) else json_type_name(value)
        raise fields.fail("status", f"is not one of the 15 statuses: {shown!r}")
    return Status(value)
