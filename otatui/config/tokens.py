"""Tokens of provisioned devices, kept in the data dir as ``tokens/<identity>`` (mode 0600).

Also reads ``token_file`` files. Nothing here logs or echoes a token.
"""

from __future__ import annotations

import re
from pathlib import Path

from otatui.paths import ensure_private_dir, write_secret

# A device identity, also used as a file name: no separators, no leading dot.
IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}")


class TokenError(Exception):
    """A device's token cannot be read or kept now (one line, never the token itself)."""


def stored_token_path(tokens_dir: Path, identity: str) -> Path:
    """``<tokens_dir>/<identity>``; the identity must be a safe file name."""
    if not IDENTITY.fullmatch(identity):
        raise ValueError("identity is not a safe file name")
    return tokens_dir / identity


def load_stored_token(tokens_dir: Path, identity: str) -> str | None:
    """The token kept at provisioning, or ``None`` when there is none yet."""
    try:
        text = stored_token_path(tokens_dir, identity).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text or None


def save_stored_token(tokens_dir: Path, identity: str, token: str) -> Path:
    """Keep a provisioned token atomically with mode 0600 in a 0700 dir; returns the file."""
    if not token.strip() or "\n" in token.strip():
        raise TokenError(
            f"device identity {identity}: refusing to store an empty or multi-line token"
        )
    target = stored_token_path(tokens_dir, identity)
    ensure_private_dir(tokens_dir)
    write_secret(target, token.strip() + "\n")
    return target


def read_token_file(path: Path, device: str | None = None) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        who = f"device {device}: " if device else ""
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise TokenError(f"{who}cannot read {path}: {reason}") from None
