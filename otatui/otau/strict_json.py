"""Strict reading of JSON text: what `json.loads` would silently accept is noted, not hidden.

Duplicate keys (parsers disagree on which wins), `NaN`/`Infinity` and numbers that overflow a float
are recorded by the hooks so the caller can refuse them with a clear reason.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any


class StrictJson:
    """The result of `loads_strict`: the value and what strict JSON forbids in it."""

    def __init__(self) -> None:
        self.value: Any = None
        self.duplicates: list[tuple[str, dict[str, Any]]] = []
        self.bad_number: str | None = None

    def _pairs(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                self.duplicates.append((key, result))
            result[key] = value
        return result

    def _constant(self, text: str) -> None:
        self.bad_number = self.bad_number or text

    def _number(self, text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            self.bad_number = self.bad_number or text
        return value


def loads_strict(text: str) -> StrictJson:
    """Parse `text`; raises what `json.loads` raises (JSONDecodeError, ValueError, RecursionError).

    `duplicates` lists (key, the object holding it); the top-level object is `value` itself.
    """
    result = StrictJson()
    result.value = json.loads(
        text,
        object_pairs_hook=result._pairs,
        parse_constant=result._constant,
        parse_float=result._number,
    )
    return result


def json_type_name(value: object) -> str:
    """How a JSON value is called in messages: 'a string', 'an array', 'null', ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def encodable(text: str) -> bool:
    """True when `text` can be written as UTF-8 (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable_raw(text: str) -> str:
    """`text` with lone surrogates replaced, so it can be stored and shown."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def iter_strings(value: object) -> Iterator[str]:
    """Every string (keys included) in a parsed JSON value, without recursion."""
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, str):
            yield current
        elif isinstance(current, dict):
            stack.extend(current.keys())
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
