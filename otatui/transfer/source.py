"""Where a payload item's bytes come from, and which credential goes with each request.

The credential rule lives here so no caller can get it wrong:

- a **content** item (no host) is ``GET <base_url>/provision/download?id=<quote_plus(id)>`` with
  the device token in ``X-Exosite-CIK``;
- an **external** item (``http(s)://host/...``) is a GET of its URL with **no** token, no
  ``Authorization``, no cookies and no default headers of the shared client: requests are built
  from scratch, never through ``client.build_request``;
- redirects are followed here (never by httpx, which keeps custom headers across origins); the
  token is sent only while the URL's origin (scheme, host, port) is the connector's own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from urllib.parse import quote_plus, urlsplit, urlunsplit

import httpx

from otatui import __version__
from otatui.otau.payload import PayloadItem, PayloadSource, display
from otatui.transfer.errors import DownloadError

TOKEN_HEADER = "X-Exosite-CIK"  # noqa: S105 -- a header name, not a secret
USER_AGENT = f"otatui/{__version__}"
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

Origin = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class ContentAuth:
    """How one device reaches the connector's content area: its HTTP base URL and its token."""

    base_url: str
    token: str = field(repr=False)

    def __post_init__(self) -> None:
        scheme = urlsplit(self.base_url).scheme.lower()
        if scheme not in ("http", "https") or not urlsplit(self.base_url).hostname:
            raise ValueError(
                f"connector base URL must be http(s)://host[:port], not {display(self.base_url)}"
            )


def origin(url: httpx.URL | str) -> Origin:
    """(scheme, host, port) with the scheme's default port filled in."""
    u = httpx.URL(url) if isinstance(url, str) else url
    scheme = u.scheme.lower()
    port = u.port if u.port is not None else (443 if scheme == "https" else 80)
    return scheme, u.host.lower(), port


@dataclass(frozen=True, slots=True)
class Source:
    """One payload item resolved against its device's connector: what to GET and with what."""

    key: str
    """Cache/transfer-state key: connector + content id, or the URL (its query only as a hash)."""
    url: str
    label: str
    """For messages: the file name and where it comes from; no query, no token."""
    token_origin: Origin | None
    token: str | None = field(default=None, repr=False)

    def headers(self, url: httpx.URL) -> dict[str, str]:
        """Headers for a GET of ``url``: the token only on the connector's own origin."""
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if self.token is not None and self.token_origin == origin(url):
            headers[TOKEN_HEADER] = self.token
        return headers

    def next_hop(self, current: httpx.URL, location: str) -> httpx.URL:
        """The URL a redirect points to; refuses non-http(s) targets and https→http downgrades."""
        try:
            target = current.join(location)
        except httpx.InvalidURL:
            raise DownloadError(f"{self.label}: the server redirected to an invalid URL") from None
        scheme = target.scheme.lower()
        if scheme not in ("http", "https") or not target.host:
            raise DownloadError(f"{self.label}: the server redirected to a non-http(s) URL")
        if current.scheme.lower() == "https" and scheme == "http":
            raise DownloadError(f"{self.label}: the server redirected from https to plain http")
        if target.userinfo:
            raise DownloadError(f"{self.label}: the server redirected to a URL with credentials")
        return target


def resolve(item: PayloadItem, auth: ContentAuth | None) -> Source:
    """The source of ``item``; a content item needs ``auth``, an external one ignores it."""
    if item.source is PayloadSource.CONTENT:
        if item.content_id is None:  # the parser guarantees it; keep mypy and readers sure
            raise DownloadError(f"{item.filename}: content item without a content id")
        if auth is None:
            raise DownloadError(
                f"{item.filename}: a connector content item needs the device's connector and token"
            )
        base = auth.base_url.rstrip("/")
        url = f"{base}/provision/download?id={quote_plus(item.content_id)}"
        return Source(
            key=f"content {base} {item.content_id}",
            url=url,
            label=f'"{item.filename}" from the connector',
            token_origin=origin(base),
            token=auth.token,
        )
    if item.url is None:
        raise DownloadError(f"{item.filename}: external item without a URL")
    parts = urlsplit(item.url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise DownloadError(f"{item.filename}: not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise DownloadError(f"{item.filename}: URL with credentials refused")
    # A signed URL's query is a secret: the key keeps only its hash.
    bare = urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, "", ""))
    query = hashlib.sha256(parts.query.encode()).hexdigest()[:16] if parts.query else ""
    return Source(
        key=f"url {bare}" + (f"?sha256:{query}" if query else ""),
        url=item.url,
        label=f'"{item.filename}" from {parts.hostname}',
        token_origin=None,
    )
