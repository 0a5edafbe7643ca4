"""The `config_otau` manifest: parsed from the exact text the connector delivered.

`parse_manifest` never raises: it returns a `Manifest` or a `ManifestError` whose `reason` is one
line (at most 200 characters) fit for an `otau_in` `TEST_ERROR` message, and whose `version` is
kept whenever the value is a JSON object with a string `version`.

Decisions (the schema says nothing about these):

- **Encoding.** Bytes must be UTF-8 (NOT_UTF8 otherwise). A leading UTF-8 byte-order mark is
  ignored for parsing but kept in `raw`. A JSON string holding a lone surrogate (`"\\ud800"`)
  cannot be written back as UTF-8, so it is refused as NOT_UTF8; such a `version` is not kept.
- **Strict JSON.** `NaN`, `Infinity` and numbers that overflow a float are refused (NOT_JSON), as
  is nesting deeper than Python's recursion limit. Duplicate keys anywhere are refused
  (DUPLICATE_KEY): parsers disagree about which one wins, so the device and ExoSense could read
  different manifests. The version is kept unless `version` itself is the duplicated key.
- **Fields.** `version` and `name` are non-blank strings (kept exactly as given, not stripped);
  `description` is an optional string, `null` meaning ""; `type` is exactly `FILE`, `JSON` or
  `URL_LIST` (case matters). Other keys are kept (`Manifest.extra`).
- **Payload.** FILE: one string item (a one-element list is refused); URL_LIST: a non-empty array
  of string items; JSON: an object. Items are numbered from 1 in messages. Local file names are made
  unique within a manifest, case-insensitively (for case-insensitive file systems): items whose
  name is unique keep it, later duplicates get `-2`, `-3`, ... before the extension.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Self

import pydantic
from pydantic import ConfigDict, PrivateAttr, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from otatui.otau.payload import PayloadItem, PayloadItemError, display, fit_filename
from otatui.otau.payload import parse_payload_item as _parse_item
from otatui.otau.strict_json import (
    encodable,
    iter_strings,
    json_type_name,
    loads_strict,
    printable_raw,
)

MAX_MANIFEST_BYTES = 1_048_576
MAX_REASON_CHARS = 200


class ManifestType(StrEnum):
    FILE = "FILE"
    JSON = "JSON"
    URL_LIST = "URL_LIST"


class ManifestErrorKind(StrEnum):
    NOT_UTF8 = "NOT_UTF8"
    NOT_JSON = "NOT_JSON"
    NOT_OBJECT = "NOT_OBJECT"
    TOO_LARGE = "TOO_LARGE"
    DUPLICATE_KEY = "DUPLICATE_KEY"
    MISSING_FIELD = "MISSING_FIELD"
    EMPTY_FIELD = "EMPTY_FIELD"
    WRONG_TYPE = "WRONG_TYPE"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    BAD_PAYLOAD = "BAD_PAYLOAD"
    BAD_ITEM = "BAD_ITEM"
    INTERNAL = "INTERNAL"  # a bug in this parser; never expected (the tests check it)


@dataclass(frozen=True, slots=True)
class ManifestError:
    kind: ManifestErrorKind
    reason: str
    version: str | None
    raw: str


_FIELDS = ("version", "name", "description", "type", "payload")


def _fail(kind: ManifestErrorKind, reason: str) -> PydanticCustomError:
    # The reason goes through the context, so braces in user text are never a template.
    return PydanticCustomError(kind.value, "{reason}", {"reason": reason})


class Manifest(pydantic.BaseModel):
    """A valid `config_otau` value. Build it with `parse_manifest` to keep the raw text."""

    model_config = ConfigDict(frozen=True, extra="allow", hide_input_in_errors=True)

    version: str
    name: str
    description: str = ""
    type: ManifestType
    payload: str | list[str] | dict[str, Any]

    _raw: str | None = PrivateAttr(default=None)
    _items: tuple[PayloadItem, ...] = PrivateAttr(default=())

    @field_validator("version", "name", mode="before")
    @classmethod
    def _non_blank(cls, value: object, info: ValidationInfo) -> str:
        if not isinstance(value, str):
            raise _fail(
                ManifestErrorKind.WRONG_TYPE,
                f'"{info.field_name}" must be a string, not {json_type_name(value)}',
            )
        if not value.strip():
            raise _fail(ManifestErrorKind.EMPTY_FIELD, f'"{info.field_name}" is empty')
        return value

    @field_validator("description", mode="before")
    @classmethod
    def _description(cls, value: object) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise _fail(
                ManifestErrorKind.WRONG_TYPE,
                f'"description" must be a string, not {json_type_name(value)}',
            )
        return value

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, value: object) -> ManifestType:
        if not isinstance(value, str):
            raise _fail(
                ManifestErrorKind.WRONG_TYPE,
                f'"type" must be a string, not {json_type_name(value)}',
            )
        if value not in ManifestType.__members__:
            raise _fail(
                ManifestErrorKind.UNKNOWN_TYPE,
                f'"type" {display(value, 30)} is not one of FILE, JSON, URL_LIST',
            )
        return ManifestType(value)

    @field_validator("payload", mode="before")
    @classmethod
    def _payload(cls, value: object, info: ValidationInfo) -> object:
        kind = info.data.get("type")
        if isinstance(kind, ManifestType):
            _check_payload(kind, value)
        return value

    @model_validator(mode="after")
    def _collect_items(self) -> Self:
        self._items = _unique_filenames(_items_of(self.type, self.payload))
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # The payload may hold signed URLs (secrets in the query): show only its shape.
        yield "version", self.version
        yield "name", self.name
        yield "type", self.type.value
        yield "items", len(self._items)
        if self.__pydantic_extra__:
            yield "extra_keys", sorted(self.__pydantic_extra__)

    @property
    def raw(self) -> str:
        """The exact text this manifest was parsed from (echo it to acknowledge).

        For a manifest built directly (not by `parse_manifest`), its compact JSON.
        """
        if self._raw is not None:
            return self._raw
        return json.dumps(self.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=False)

    @property
    def items(self) -> tuple[PayloadItem, ...]:
        """The files to download: FILE has one, URL_LIST n, JSON none. File names are unique."""
        return self._items

    @property
    def needs_download(self) -> bool:
        return bool(self._items)

    @property
    def extra(self) -> dict[str, Any]:
        """The keys beyond the schema, kept as received (a copy)."""
        return dict(self.__pydantic_extra__ or {})


def _check_payload(kind: ManifestType, value: object) -> None:
    if kind is ManifestType.FILE:
        if not isinstance(value, str):
            raise _fail(
                ManifestErrorKind.BAD_PAYLOAD,
                f'FILE "payload" must be one string (a URL or content id), '
                f"not {json_type_name(value)}",
            )
        _check_item("payload", value)
    elif kind is ManifestType.URL_LIST:
        if not isinstance(value, list):
            raise _fail(
                ManifestErrorKind.BAD_PAYLOAD,
                f'URL_LIST "payload" must be an array of strings, not {json_type_name(value)}',
            )
        if not value:
            raise _fail(ManifestErrorKind.BAD_PAYLOAD, 'URL_LIST "payload" is an empty array')
        for number, item in enumerate(value, start=1):
            if not isinstance(item, str):
                raise _fail(
                    ManifestErrorKind.BAD_PAYLOAD,
                    f"payload item {number} is {json_type_name(item)}, not a string",
                )
            _check_item(f"payload item {number}", item)
    elif not isinstance(value, dict):
        raise _fail(
            ManifestErrorKind.BAD_PAYLOAD,
            f'JSON "payload" must be an object, not {json_type_name(value)}',
        )


def _check_item(label: str, item: str) -> None:
    try:
        _parse_item(item)
    except PayloadItemError as exc:
        raise _fail(ManifestErrorKind.BAD_ITEM, f"{label} {exc}") from None


def _items_of(kind: ManifestType, payload: object) -> list[PayloadItem]:
    if kind is ManifestType.FILE and isinstance(payload, str):
        return [_parse_item(payload)]
    if kind is ManifestType.URL_LIST and isinstance(payload, list):
        return [_parse_item(item) for item in payload]
    return []


def _unique_filenames(items: list[PayloadItem]) -> tuple[PayloadItem, ...]:
    """Give every item a distinct file name (case-insensitively), deterministically."""
    taken: set[str] = set()
    first_owner: dict[str, int] = {}
    for index, item in enumerate(items):
        key = item.filename.casefold()
        first_owner.setdefault(key, index)
        taken.add(key)
    next_counter: dict[str, int] = {}  # per base name, so n duplicates cost O(n), not O(n²)
    result: list[PayloadItem] = []
    for index, item in enumerate(items):
        key = item.filename.casefold()
        if first_owner[key] == index:
            result.append(item)
            continue
        counter = next_counter.get(key, 2)
        while True:
            candidate = fit_filename(item.filename, f"-{counter}")
            counter += 1
            if candidate.casefold() not in taken:
                break
        next_counter[key] = counter
        taken.add(candidate.casefold())
        result.append(replace(item, filename=candidate))
    return tuple(result)


# ---------------------------------------------------------------------------------------------
# parsing


def _one_line(reason: str) -> str:
    flat = " ".join(reason.split())
    flat = "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in flat
    )
    if len(flat) > MAX_REASON_CHARS:
        flat = flat[: MAX_REASON_CHARS - 1] + "…"
    return flat


def parse_manifest(raw: str | bytes) -> Manifest | ManifestError:
    """Parse a `config_otau` value. Never raises: returns a Manifest or a ManifestError."""
    try:
        return _parse(raw)
    except Exception as exc:  # the contract is "never raises"; the tests assert this never happens
        text = raw if isinstance(raw, str) else repr(raw)[:1000]
        return ManifestError(
            ManifestErrorKind.INTERNAL,
            f"manifest could not be parsed (internal error: {type(exc).__name__})",
            None,
            printable_raw(text),
        )


def _parse(raw: object) -> Manifest | ManifestError:
    # `object`, not `str | bytes`: callers outside mypy may pass anything, and it must not raise.
    if isinstance(raw, bytearray | memoryview):
        raw = bytes(raw)
    if isinstance(raw, bytes):
        if len(raw) > MAX_MANIFEST_BYTES:
            return _error(ManifestErrorKind.TOO_LARGE, _too_large(len(raw)), raw=raw)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _error(
                ManifestErrorKind.NOT_UTF8,
                f"manifest is not UTF-8 (invalid byte at offset {exc.start})",
                raw=raw,
            )
    elif isinstance(raw, str):
        text = raw
        size = len(text) if len(text) > MAX_MANIFEST_BYTES else _utf8_size(text)
        if size > MAX_MANIFEST_BYTES:
            return _error(ManifestErrorKind.TOO_LARGE, _too_large(size), raw=text)
        if not encodable(text):
            return _error(ManifestErrorKind.NOT_UTF8, _not_utf8_text(text), raw=text)
    else:
        return _error(
            ManifestErrorKind.NOT_JSON,
            f"manifest must be text or bytes, not {type(raw).__name__}",
            raw=repr(raw)[:1000],
        )

    try:
        hooks = loads_strict(text.removeprefix("\ufeff"))
    except json.JSONDecodeError as exc:
        return _error(
            ManifestErrorKind.NOT_JSON,
            f"manifest is not JSON: {exc.msg} (line {exc.lineno} column {exc.colno})",
            raw=text,
        )
    except RecursionError:
        return _error(ManifestErrorKind.NOT_JSON, "manifest is nested too deeply", raw=text)
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        return _error(ManifestErrorKind.NOT_JSON, f"manifest is not usable JSON: {exc}", raw=text)

    data = hooks.value
    if not isinstance(data, dict):
        return _error(
            ManifestErrorKind.NOT_OBJECT,
            f"manifest must be a JSON object, not {json_type_name(data)}",
            raw=text,
        )
    version = data.get("version")
    if not isinstance(version, str) or not encodable(version):
        version = None
    if hooks.duplicates:
        key, owner = hooks.duplicates[0]
        if any(k == "version" and o is data for k, o in hooks.duplicates):
            version = None
        where = "in the manifest" if owner is data else "inside the manifest"
        return _error(
            ManifestErrorKind.DUPLICATE_KEY,
            f"duplicate key {display(key, 40)} {where}",
            raw=text,
            version=version,
        )
    if hooks.bad_number is not None:
        return _error(
            ManifestErrorKind.NOT_JSON,
            f"manifest is not strict JSON: number {display(hooks.bad_number, 30)} is not finite",
            raw=text,
            version=version,
        )
    if not all(encodable(s) for s in iter_strings(data)):
        return _error(
            ManifestErrorKind.NOT_UTF8,
            "manifest holds a lone surrogate escape (not valid Unicode)",
            raw=text,
            version=version,
        )
    try:
        manifest = Manifest.model_validate(data)
    except pydantic.ValidationError as exc:
        kind, reason = _first_problem(exc)
        return _error(kind, reason, raw=text, version=version)
    manifest._raw = text
    return manifest


def _first_problem(exc: pydantic.ValidationError) -> tuple[ManifestErrorKind, str]:
    """Map pydantic's errors to one kind and one line, in field order."""

    def order(error: Any) -> int:
        loc = error["loc"]
        head = loc[0] if loc else ""
        return _FIELDS.index(head) if head in _FIELDS else len(_FIELDS)

    errors = sorted(exc.errors(include_url=False, include_input=False), key=order)
    first = errors[0]
    field = str(first["loc"][0]) if first["loc"] else "manifest"
    if first["type"] in ManifestErrorKind.__members__:
        return ManifestErrorKind(first["type"]), first["msg"]
    if first["type"] == "missing":
        return ManifestErrorKind.MISSING_FIELD, f'manifest has no "{field}"'
    return ManifestErrorKind.WRONG_TYPE, f'"{field}" has the wrong type'


def _not_utf8_text(text: str) -> str:
    """Why a text that cannot be written as UTF-8 is refused. The channels keep the bytes of a
    non-UTF-8 value as surrogate escapes: then name the offset of the first bad byte."""
    try:
        text.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeEncodeError:
        return "manifest text holds a lone surrogate (not valid UTF-8)"
    except UnicodeDecodeError as exc:
        return f"manifest is not UTF-8 (invalid byte at offset {exc.start})"
    return "manifest text holds surrogate escapes (not valid UTF-8 text)"


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _too_large(size: int) -> str:
    return f"manifest is {size} bytes, more than the {MAX_MANIFEST_BYTES} allowed"


def _error(
    kind: ManifestErrorKind, reason: str, *, raw: str | bytes, version: str | None = None
) -> ManifestError:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else printable_raw(raw)
    return ManifestError(kind=kind, reason=_one_line(reason), version=version, raw=text)
