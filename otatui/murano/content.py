"""The connector's content area seen by a device: the list of content ids and each one's info.

- ``GET /provision/download`` → ``text/csv``, one content id per line.
- ``GET /provision/download?id=<id>&info=true`` → one line
  ``<content-type>,<byte-size>,<updated-timestamp-s>,<description>``; an empty description
  leaves a trailing comma (murano-device-api.md §4).

Downloading a content item is `otatui.transfer`'s job, not this module's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import quote_plus

import httpx

from otatui.murano.channel import AuthError, ChannelError, NotConnected
from otatui.murano.device_api import TOKEN_HEADER, describe_transport_error

DOWNLOAD_PATH: Final = "/provision/download"


@dataclass(frozen=True, slots=True)
class ContentInfo:
    content_type: str
    size: int
    updated: float  # unix seconds
    description: str = ""


def parse_content_list(text: str) -> list[str]:
    """Content ids, one per line, in the connector's order (blank lines skipped)."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def parse_content_info(text: str) -> ContentInfo:
    """Parse the info line; the description may be empty or hold commas. ValueError if not."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        raise ValueError("content info is not one line")
    parts = lines[0].strip().split(",", 3)
    if len(parts) < 3:
        raise ValueError("content info has fewer than three fields")
    content_type, size_text, updated_text = (p.strip() for p in parts[:3])
    description = parts[3].strip() if len(parts) == 4 else ""
    if len(description) >= 2 and description[0] == description[-1] == '"':
        description = description[1:-1].replace('""', '"')  # a CSV-quoted description
    size = int(size_text)
    if size < 0:
        raise ValueError("content size is negative")
    updated = float(updated_text) if updated_text else 0.0
    return ContentInfo(content_type, size, updated, description)


async def list_content(
    client: httpx.AsyncClient, base_url: str, token: str | None, *, timeout_s: float = 30.0
) -> list[str]:
    """Ids of the content the connector holds for the device with this token."""
    url = base_url.rstrip("/") + DOWNLOAD_PATH
    resp = await _get(client, url, token, "content list", timeout_s)
    if resp.status_code == 204:
        return []
    if resp.status_code != 200:
        raise ChannelError(f"content list: HTTP {resp.status_code}")
    return parse_content_list(resp.content.decode("utf-8", errors="replace"))


async def content_info(
    client: httpx.AsyncClient,
    base_url: str,
    token: str | None,
    content_id: str,
    *,
    timeout_s: float = 30.0,
) -> ContentInfo:
    """Type, size, update time and description of one content item."""
    url = f"{base_url.rstrip('/')}{DOWNLOAD_PATH}?id={quote_plus(content_id)}&info=true"
    what = f"info of content {content_id}"
    resp = await _get(client, url, token, what, timeout_s)
    if resp.status_code == 404:
        raise ChannelError(f"content {content_id} is not on the connector")
    if resp.status_code != 200:
        raise ChannelError(f"{what}: HTTP {resp.status_code}")
    try:
        return parse_content_info(resp.content.decode("utf-8", errors="replace"))
    except ValueError as exc:
        raise ChannelError(f"{what}: unreadable answer ({exc})") from None


async def _get(
    client: httpx.AsyncClient, url: str, token: str | None, what: str, timeout_s: float
) -> httpx.Response:
    headers = {"Accept": "text/csv"}
    if token is not None:
        headers[TOKEN_HEADER] = token
    try:
        resp = await client.get(url, headers=headers, timeout=timeout_s)
    except httpx.TransportError as exc:
        reason = describe_transport_error(exc, token)
        raise NotConnected(f"{what}: cannot reach the connector ({reason})") from None
    if resp.status_code == 401:
        raise AuthError(f"{what}: the connector refused the device token (HTTP 401)")
    return resp
