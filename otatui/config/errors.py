"""One-line configuration errors: ``<file>: <key path>: <problem>``, never holding a secret.

pydantic puts the offending input in its errors; this module builds its own message from each
error's location, type and message only, and scrubs every token string of the file from it.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

# Every key of every config table, to suggest the intended one for a typo.
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


def validation_error(file: Path, exc: ValidationError, data: object) -> ConfigError:
    """The first problem of a pydantic error, as a :class:`ConfigError` without any input value."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    loc: tuple[str | int, ...] = tuple(first["loc"])
    ctx: dict[str, Any] = first.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, FieldProblem):
        loc += cause.path
        problem = cause.message
    elif first["type"] == "extra_forbidden":
        problem = "unknown key"
        close = difflib.get_close_matches(str(loc[-1]), KNOWN_KEYS, n=1)
        if close:
            problem += f" (did you mean {close[0]!r}?)"
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
    return ConfigError(problem, file=file, key=key, more=len(errors) - 1)


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
