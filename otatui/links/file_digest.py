"""The sha256 and size of a payload file, read in blocks (what the local links tell the device)."""

from __future__ import annotations

import hashlib
from pathlib import Path

_BLOCK = 1 << 20


def file_digest(path: Path) -> tuple[str, int]:
    """(sha256 hex, size in bytes) of the file; raises OSError. Blocking: run it in a thread."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size
