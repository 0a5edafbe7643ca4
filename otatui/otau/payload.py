"""One payload item of a manifest: a connector content id or an external http(s) URL.

The OTA guide: "Files that are stored in the Exosite IoT Connector will not have a host as part of
the URL." So an item with no scheme and no host is a *content id* (downloaded with
`GET /provision/download?id=<id>`), and an `http://` or `https://` URL with a host is *external*.
Everything else is refused with a one-line reason.

Decisions (the schema says nothing about these):

- **Schemes.** Any leading `<letters>:` counts as a scheme, so `ftp:`, `file:`, `data:`,
  `javascript:` and also `fw:1.bin` or `localhost:8080/x` are refused; only `http`/`https`
  (any case) with a host are accepted.
- **Credentials.** A URL with userinfo (`https://user:pw@host/`) is refused; the message shows
  `***` in place of the userinfo and never the password. Quoted items in messages also hide the
  query string (`?…`), which often carries signed-URL tokens, and are cut to 60 characters.
- **Fragment.** `#sha256=<64 hex>` pins the file's sha256 (hex of any case, stored lowercase;
  the key is case-insensitive; in an external URL it may be one `&`-separated part of the fragment).
  A part that starts with `sha256` but is not exactly 64 hex digits is refused (a typo must not
  silently turn a pinned download into an unpinned one). In an external URL every other fragment
  part is dropped: the fragment is never sent, so dropping it does not change what is fetched. A
  content id may only carry exactly `#sha256=<hex>`: any other `#` is refused, because dropping it
  would name a different content id.
- **Content id.** Not empty, at most 255 bytes of UTF-8, no `/` or `\\`, no `..`, no leading `.`
  (it doubles as the local file name), no leading/trailing whitespace, nothing that Python calls
  non-printable except the plain space (control, bidi-override, soft-hyphen, line-separator,
  lone-surrogate, unassigned characters). Inner spaces are fine (`fw 1.0.bin`).
- **URL.** At most 8192 characters, no whitespace, control characters or backslashes, a valid port.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote, urlsplit

MAX_CONTENT_ID_BYTES = 255
MAX_FILENAME_BYTES = 255
MAX_URL_CHARS = 8192
DISPLAY_CHARS = 60

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_HEX64 = re.compile(r"^[0-9A-Fa-f]{64}$")
# Replaced in file names taken from URLs: separators and what Windows/macOS refuse.
_FILENAME_REPLACED = frozenset('/\\:*?"<>|')
_HOST_OK = re.compile(r"^[^\s/\\?#@:%<>\"{}|^`\[\]]+$")


class PayloadItemError(ValueError):
    """A payload item is neither a valid content id nor a valid http(s) URL.

    `str()` is one line: the item (shortened, credentials and query hidden) and the reason.
    """

    def __init__(self, raw: str, detail: str) -> None:
        self.detail = detail
        super().__init__(f"{display(raw)} {detail}")


class PayloadSource(StrEnum):
    CONTENT = "content"
    EXTERNAL = "external"


@dataclass(frozen=True, slots=True, repr=False)
class PayloadItem:
    """A parsed payload item. Build it with `parse_payload_item`, which enforces the invariants."""

    raw: str
    source: PayloadSource
    content_id: str | None
    url: str | None
    sha256: str | None
    filename: str

    @property
    def host(self) -> str | None:
        """The lowercase host of an external URL; None for a content id."""
        if self.url is None:
            return None
        return urlsplit(self.url).hostname

    @property
    def pinned(self) -> bool:
        """True when the item carries an expected sha256."""
        return self.sha256 is not None

    def __repr__(self) -> str:
        # The query of a signed URL is a secret: never show it.
        return (
            f"PayloadItem(source={self.source.value}, item={display(self.raw, limit=120)}, "
            f"filename={self.filename!r}, sha256={self.sha256!r})"
        )


def parse_payload_item(raw: str) -> PayloadItem:
    """Classify and validate one payload item; raises `PayloadItemError` with a one-line reason."""
    if not isinstance(raw, str):
        raise PayloadItemError(repr(raw), f"is a {type(raw).__name__}, not a string")
    if raw == "" or raw.isspace():
        raise PayloadItemError(raw, "is empty")
    scheme = _SCHEME.match(raw)
    if scheme is not None:
        name = scheme.group(1).lower()
        if name not in ("http", "https"):
            raise PayloadItemError(
                raw,
                "is not an http(s) URL or a connector content id"
                f' (scheme "{name[:20]}" is not allowed)',
            )
        return _parse_external(raw)
    return _parse_content(raw)


def _parse_external(raw: str) -> PayloadItem:
    if len(raw) > MAX_URL_CHARS:
        raise PayloadItemError(raw, f"is longer than {MAX_URL_CHARS} characters")
    if any(ch.isspace() or _unsafe(ch) for ch in raw):
        raise PayloadItemError(
            raw, "contains whitespace, control or invisible characters (encode them as %XX)"
        )
    if "\\" in raw:
        raise PayloadItemError(raw, "contains a backslash (encode it as %5C)")
    url, _, fragment = raw.partition("#")
    authority = url.split("//", 1)[1] if "//" in url else ""
    if "@" in re.split(r"[/?]", authority, maxsplit=1)[0]:
        raise PayloadItemError(raw, "contains credentials (user@host); they are not allowed")
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018 -- the property raises ValueError on a bad port
    except ValueError:
        raise PayloadItemError(raw, "has an invalid host or port") from None
    if not parts.netloc or not hostname:
        raise PayloadItemError(raw, "has no host (an http(s) URL needs scheme://host/...)")
    if not _valid_host(hostname):
        raise PayloadItemError(raw, "has an invalid host")
    sha256 = _external_sha256(raw, fragment)
    name = _filename_from_url(parts.path, hostname)
    return PayloadItem(
        raw=raw,
        source=PayloadSource.EXTERNAL,
        content_id=None,
        url=url,
        sha256=sha256,
        filename=name,
    )


def _valid_host(hostname: str) -> bool:
    if ":" in hostname:  # urlsplit() removed the brackets of an IPv6 literal
        try:
            ipaddress.IPv6Address(hostname)
        except ValueError:
            return False
        return True
    return bool(_HOST_OK.match(hostname))


def _external_sha256(raw: str, fragment: str) -> str | None:
    found: str | None = None
    for part in fragment.split("&"):
        if not part.lower().startswith("sha256"):
            continue
        value = _sha256_value(raw, part)
        if found is not None and found != value:
            raise PayloadItemError(raw, "has two different sha256 values in its fragment")
        found = value
    return found


def _sha256_value(raw: str, part: str) -> str:
    key, eq, value = part.partition("=")
    if key.lower() != "sha256" or not eq:
        raise PayloadItemError(raw, "has a malformed sha256 fragment (expected #sha256=<64 hex>)")
    if not _HEX64.match(value):
        raise PayloadItemError(
            raw, f"has a sha256 fragment that is not 64 hex digits ({len(value)} characters)"
        )
    return value.lower()


def _parse_content(raw: str) -> PayloadItem:
    content_id, hash_sign, fragment = raw.partition("#")
    sha256 = None
    if hash_sign:
        if not fragment.lower().startswith("sha256"):
            raise PayloadItemError(
                raw, "is not a valid content id ('#' is only allowed as #sha256=<64 hex>)"
            )
        sha256 = _sha256_value(raw, fragment)
    problem = _content_id_problem(content_id)
    if problem is not None:
        raise PayloadItemError(raw, problem)
    return PayloadItem(
        raw=raw,
        source=PayloadSource.CONTENT,
        content_id=content_id,
        url=None,
        sha256=sha256,
        filename=content_id,
    )


def _content_id_problem(content_id: str) -> str | None:
    if content_id == "" or content_id.isspace():
        return "has an empty content id"
    if "/" in content_id:
        return "is not a valid item: a content id has no '/' and a URL needs http(s)://"
    if "\\" in content_id:
        return "is not a valid content id (it contains '\\')"
    if ".." in content_id:
        return "is not a valid content id (it contains '..')"
    if content_id.startswith("."):
        return "is not a valid content id (it starts with '.')"
    if any(_unsafe(ch) for ch in content_id):
        return "is not a valid content id (it contains control or invisible characters)"
    if content_id != content_id.strip():
        return "is not a valid content id (leading or trailing whitespace)"
    if _utf8_len(content_id) > MAX_CONTENT_ID_BYTES:
        return f"is not a valid content id (longer than {MAX_CONTENT_ID_BYTES} bytes)"
    return None


def _unsafe(ch: str) -> bool:
    """Not allowed in a content id or file name: anything not printable but the plain space
    (control, format such as bidi overrides and soft hyphens, separators, surrogates,
    unassigned)."""
    return ch != " " and not ch.isprintable()


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _filename_from_url(path: str, hostname: str) -> str:
    segment = unquote(path.rsplit("/", 1)[-1], errors="replace")
    name = safe_filename(segment)
    if not name:
        name = safe_filename(hostname) or "download"
    return name


def safe_filename(text: str) -> str:
    """A file name made safe: separators and control characters replaced, no leading dots or
    whitespace, no trailing dots or whitespace, at most 255 bytes (extension kept). May be ""."""
    cleaned = "".join(
        "_"
        if ch in _FILENAME_REPLACED or _unsafe(ch) or (not ch.isprintable() and ch != " ")
        else ch
        for ch in text
    )
    cleaned = cleaned.lstrip(". \t").rstrip(". \t")
    return fit_filename(cleaned, "")


def fit_filename(name: str, suffix: str) -> str:
    """`name` with `suffix` inserted before its extension, cut to fit in 255 bytes of UTF-8."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 16:
        stem, ext = name, ""
    tail = (suffix + "." + ext) if ext else suffix
    budget = MAX_FILENAME_BYTES - _utf8_len(tail)
    encoded = stem.encode("utf-8", "surrogatepass")
    if len(encoded) > budget:
        stem = encoded[:budget].decode("utf-8", "ignore").rstrip(". ")
    return stem + tail if stem or not ext else tail.lstrip(".")


def display(text: str, limit: int = DISPLAY_CHARS) -> str:
    """`text` quoted for a one-line message: userinfo and query hidden, escapes, cut to `limit`."""
    shown = text
    scheme_end = shown.find("//")
    if scheme_end != -1 and "@" in shown[scheme_end:]:
        shown = shown[: scheme_end + 2] + "***@" + shown.rsplit("@", 1)[1]
    if "?" in shown:
        shown = shown.split("?", 1)[0] + "?…"
    shown = "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in shown
    )
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    return f'"{shown}"'
