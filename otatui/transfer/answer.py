"""What an HTTP answer to a download request says: ranges, length, validator, refusals.

Pure functions over the status and headers, shared by both transports of :mod:`job`.
"""

from __future__ import annotations

import re

import httpx

CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
UNSATISFIED_RANGE = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.IGNORECASE)


def unsatisfied_range(value: str | None) -> int | None:
    """The total size from a 416's ``Content-Range: bytes */<total>``, else ``None``."""
    match = UNSATISFIED_RANGE.match(value or "")
    return int(match.group(1)) if match is not None else None


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    match = CONTENT_RANGE.match(value or "")
    if match is None:
        return None
    first, last = int(match.group(1)), int(match.group(2))
    total = None if match.group(3) == "*" else int(match.group(3))
    if last < first or (total is not None and last >= total):
        return None
    return first, last, total


def content_length(headers: httpx.Headers) -> int | None:
    value = headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None


def validator_of(headers: httpx.Headers) -> str | None:
    """A strong ETag, else Last-Modified: what makes a resume conditional."""
    etag: str | None = headers.get("etag")
    if etag is not None and etag.startswith('"'):
        return etag
    modified: str | None = headers.get("last-modified")
    return modified


def refusal(label: str, status: int) -> str:
    if status == 401:
        return f"{label}: the connector refused the device token (HTTP 401)"
    if status == 403:
        return f"{label}: access forbidden (HTTP 403)"
    if status in (404, 410):
        return f"{label}: not found (HTTP {status})"
    return f"{label}: the server answered HTTP {status}"


def describe_transport_error(exc: httpx.TransportError) -> str:
    text = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({text})"
    return f"connection lost ({text})"
