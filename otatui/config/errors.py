"""One-line configuration errors: ``<file>: <key path>: <problem>``, never holding a secret.

pydantic puts the offending input in its errors; this module builds its own message from each
error's location, type and message only, and scrubs every token string of the file from it.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

# Every key of every config table: the suggestions for a typo when the table's model is unknown.
KNOWN_KEYS = (
    *("site", "connector", "limits", "paths", "keys", "devices"),
    *("url", "mqtt_url", "ca_file", "insecure", "data_dir", "cache_dir"),
    *("concurrent_downloads", "concurrent_installs", "progress_interval", "progress_percent"),
    *("name", "identity", "token", "token_file", "token_env", "cert_file", "key_file"),
    *("protocol", "role", "installed_version", "install_command", "install_timeout", "link"),
)

_FRIENDLY = {
    "missing": "required key is missing",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "int_type": "must be a whole number",
    "float_type": "must be a number",
    "path_type": "must be a path (a string)",
    "finite_number": "must be a finite number",
}
_TOML_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_REDACTED = "<redacted>"
# Anything shaped like a Murano token (40 letters and digits) is masked even if not known as one.
_TOKEN_SHAPED = re.compile(r"[A-Za-z0-9]{32,}")


class ConfigError(Exception):
    """A configuration problem, as one human line: ``<file>: <key>: <problem>``."""

    def __init__(
        self,
        problem: str,
        *,
        file: Path | str | None = None,
        key: str | None = None,
        more: int = 0,
    ) -> None:
        self.problem = " ".join(problem.split())
        self.file = file
        self.key = key
        self.more = more
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [str(p) for p in (self.file, self.key) if p]
        parts.append(self.problem)
        text = ": ".join(parts)
        if self.more:
            text += f" (and {self.more} more problem{'s' if self.more > 1 else ''})"
        return text

    @classmethod
    def from_toml(cls, file: Path, exc: tomllib.TOMLDecodeError) -> ConfigError:
        """A TOML syntax error, with its line and column."""
        msg = str(exc)
        match = _TOML_POS.search(msg)
        if match:
            where = f"line {match.group(1)}, column {match.group(2)}"
            return cls(f"invalid TOML: {msg[: match.start()]}", file=file, key=where)
        return cls(f"invalid TOML: {msg}", file=file)


class FieldProblem(ValueError):
    """Raised inside validators to point at a key below the model being validated."""

    def __init__(self, path: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.path = tuple(path)
        self.message = message


def key_path(loc: Iterable[str | int]) -> str:
    """``("devices", 2, "protocol")`` -> ``devices[2].protocol``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part == "[key]":
            continue  # pydantic's marker for a bad dict key: the key itself is named already
        else:
            text += f".{part}" if text else part
    return text


def validation_error(
    file: Path, exc: ValidationError, data: object, model: type[BaseModel] | None = None
) -> ConfigError:
    """The first problem of a pydantic error, as a :class:`ConfigError` without any input value.

    An unknown key comes first, whatever pydantic's order: a mistyped key (``urll``) is the cause
    of the "missing" error of the key it was meant to be (``url``), which is then not counted.
    `model` (the validated model) gives each table's own keys for the suggestion.
    """
    errors = exc.errors(include_url=False, include_input=False)
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    first = unknown[0] if unknown else errors[0]
    loc: tuple[str | int, ...] = tuple(first["loc"])
    ctx: dict[str, Any] = first.get("ctx") or {}
    cause = ctx.get("error")
    more = len(errors) - 1
    if isinstance(cause, FieldProblem):
        loc += cause.path
        problem = cause.message
    elif first["type"] == "extra_forbidden":
        problem = f"unknown key {str(loc[-1])!r}"
        close = _suggestion(str(loc[-1]), _keys_at(model, loc[:-1]))
        if close:
            problem += f" (did you mean {close!r}?)"
            more -= _explained(errors, (*loc[:-1], close))
    elif first["type"] == "value_error" and isinstance(cause, ValueError):
        problem = str(cause)
    else:
        problem = _FRIENDLY.get(first["type"], first["msg"])
    key = key_path(loc)
    for secret in sorted(secret_strings(data), key=len, reverse=True):
        problem = problem.replace(secret, _REDACTED)
        key = key.replace(secret, _REDACTED)
    problem = _TOKEN_SHAPED.sub(_REDACTED, problem)
    key = _TOKEN_SHAPED.sub(_REDACTED, key)
    return ConfigError(problem, file=file, key=key, more=more)


def _suggestion(key: str, known: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(key, known, n=1)
    if not close:  # "URL", "Url": a difference of case only
        by_case = {k.lower(): k for k in known}
        return by_case.get(key.lower())
    return close[0]


def _explained(errors: list[ErrorDetails], loc: tuple[str | int, ...]) -> int:
    """1 if `errors` hold "missing" for `loc` (explained by the mistyped key), else 0."""
    return int(any(e["type"] == "missing" and tuple(e["loc"]) == loc for e in errors))


def _keys_at(model: type[BaseModel] | None, loc: Sequence[str | int]) -> Sequence[str]:
    """The keys of the table at `loc` under `model` (all known keys when it cannot be told)."""
    for part in loc:
        if model is None:
            break
        if isinstance(part, int):
            continue  # an entry of a list of tables: the model is the entry's already
        field = model.model_fields.get(part)
        model = _model_in(field.annotation) if field is not None else None
    if model is None:
        return KNOWN_KEYS
    return tuple(model.model_fields)


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The table model an annotation holds (``X``, ``X | None``, ``tuple[X, ...]``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def secret_strings(data: object) -> set[str]:
    """Every string under a ``token`` key, at any depth of the parsed TOML."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "token" and isinstance(value, str) and value.strip():
                found.add(value.strip())
            found |= secret_strings(value)
    elif isinstance(data, list):
        for item in data:
            found |= secret_strings(item)
    return found
