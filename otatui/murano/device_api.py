"""Basics of the Murano HTTP device API shared by the channel, provisioning and content calls.

Paths, the token header, the shared `httpx.AsyncClient` factory, ``Last-Modified`` parsing (Unix
seconds or HTTP-date, murano-device-api.md §2.1) and one-line, token-free descriptions of
network failures.
"""

from __future__ import annotations

import email.utils
import re
import ssl
from datetime import UTC
from typing import Final

import httpx

ALIAS_PATH: Final = "/onep:v1/stack/alias"
RECORD_PATH: Final = "/onep:v1/stack/record"
TOKEN_HEADER: Final = "X-Exosite-CIK"  # noqa: S105 (a header name, not a secret)
_UNIX_SECONDS = re.compile(r"\d{1,12}(\.\d+)?")


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """The TLS context of the device API client (verification on; `ca_file` when given),
    also given to the downloader so https payloads take its fast path with the same trust."""
    return ssl.create_default_context(cafile=ca_file)


def device_api_client(
    *,
    ca_file: str | None = None,
    verify: bool = True,
    cert_file: str | None = None,
    key_file: str | None = None,
    max_keepalive: int = 64,
) -> httpx.AsyncClient:
    """An AsyncClient suited to many devices' long polls: no connection limit, no auth defaults.

    Each long poll holds a connection for up to ``Request-Timeout``: a bounded pool would make
    writes wait behind polls, so the number of connections is unbounded. Idle keep-alive
    connections are bounded (`max_keepalive`): httpcore 1.0's pool scans every connection for
    every idle one on each request, so 1,000 devices answered at once with unbounded keep-alive
    took ~30 s to acknowledge on this machine instead of ~6 s. Timeouts are given per request.
    """
    tls: ssl.SSLContext | bool
    if not verify:
        tls = False
    else:
        tls = tls_context(ca_file)
        if cert_file:
            tls.load_cert_chain(cert_file, key_file)
    return httpx.AsyncClient(
        verify=tls,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=max_keepalive),
        timeout=httpx.Timeout(30.0),
        follow_redirects=False,
    )


def parse_last_modified(value: str | None) -> float | None:
    """Unix seconds from a ``Last-Modified`` header: Unix seconds or an HTTP-date; else None."""
    if value is None:
        return None
    text = value.strip()
    if _UNIX_SECONDS.fullmatch(text):
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def describe_transport_error(exc: httpx.TransportError, secret: str | None = None) -> str:
    """One line naming a network failure; `secret` (a token) is blanked if it ever shows up."""
    if isinstance(exc, httpx.TimeoutException):
        text = "no answer in time"
    else:
        detail = " ".join(str(exc).split())
        text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return scrub(text, secret)


def scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text
