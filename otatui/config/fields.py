"""Field types shared by the config tables: resolved paths, names, identities, connector URLs.

Validation messages never echo a value that could be a secret (URLs, tokens).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, StrictStr, ValidationInfo

from otatui.config.errors import FieldProblem
from otatui.config.tokens import IDENTITY

# Every config table: immutable, and unknown keys are errors (a typo must not pass silently).
MODEL_CONFIG = ConfigDict(frozen=True, extra="forbid")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _resolve_path(value: object, info: ValidationInfo) -> object:
    """Expand ``~`` and resolve a relative path against the config file's directory."""
    if not isinstance(value, str):
        return value  # the Path validator reports the wrong type
    if not value:
        raise ValueError("must not be empty")
    path = Path(value).expanduser()
    context = info.context or {}
    base = Path(context.get("base_dir", Path.cwd()))
    return path if path.is_absolute() else base / path


def _existing_file(path: Path, info: ValidationInfo) -> Path:
    # The path is not echoed: a token pasted into token_file must not show up in the error.
    if not path.is_file():
        base = (info.context or {}).get("base_dir", Path.cwd())
        problem = "not a regular file" if path.exists() else "file not found"
        raise ValueError(f"{problem} (relative paths start at {base})")
    return path


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _one_line_name(value: str) -> str:
    if not value.strip() or value != value.strip() or _CONTROL.search(value) or len(value) > 64:
        raise ValueError("must be 1-64 characters, without control characters or outer spaces")
    return value


def _identity_value(value: str) -> str:
    if not IDENTITY.fullmatch(value):
        raise ValueError(
            "must be 1-128 characters of letters, digits and . _ : @ + -, "
            "starting with a letter or digit"
        )
    return value


def check_url(
    key: str, url: str, *, secure: str, plain: str, insecure: bool, path_allowed: bool = True
) -> None:
    """Check a connector URL's form. Messages never echo the URL (it could hold a secret)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise FieldProblem((key,), f"not a valid URL; expected {secure}://host[:port]") from None
    scheme = parts.scheme.lower()
    if scheme == plain and not insecure:
        raise FieldProblem(
            (key,), f"plain {plain}:// is refused unless insecure = true (development only)"
        )
    if scheme not in (secure, plain):
        raise FieldProblem((key,), f"must start with {secure}:// (or {plain}:// with insecure)")
    if not parts.hostname:
        raise FieldProblem((key,), f"has no host; expected {secure}://host[:port]")
    if parts.username is not None or parts.password is not None:
        raise FieldProblem((key,), "must not hold credentials (user:password@); use tokens")
    if parts.query or parts.fragment or "#" in url:
        raise FieldProblem((key,), "must not have a query (?) or fragment (#)")
    if not path_allowed and parts.path not in ("", "/"):
        raise FieldProblem((key,), f"must be {secure}://host[:port] without a path")
    if port == 0:
        raise FieldProblem((key,), "port must be 1-65535")


ConfigPath = Annotated[Path, BeforeValidator(_resolve_path)]
ExistingFile = Annotated[Path, BeforeValidator(_resolve_path), AfterValidator(_existing_file)]
NonEmptyStr = Annotated[StrictStr, AfterValidator(_non_empty)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)]
DeviceName = Annotated[StrictStr, AfterValidator(_one_line_name)]
Identity = Annotated[StrictStr, AfterValidator(_identity_value)]
