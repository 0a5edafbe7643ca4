"""The Murano HTTP device API (murano-device-api.md §1.3, §2, §2.1, §4, checklist §5.3).

Routes: ``POST /provision/activate``, ``GET|POST /onep:v1/stack/alias`` (read, write, hybrid,
long poll), ``POST /onep:v1/stack/record``, ``GET /timestamp``, ``GET /provision/download``
(list, ``info=true``, download with ``Range``). Where the sheet is uncertain this side picks the
documented reading: ``Last-Modified`` as an HTTP-date, ``206`` for ranges, ``Content-Length``
framing. ``If-Modified-Since`` is accepted as Unix seconds or an HTTP-date.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import parse_qsl, quote, unquote, urlencode

from .content import Content, ContentStore
from .faults import Faults
from .http_server import ClientGone, Exchange, FileBody, Request, Response
from .state import ConnectorState, Device, ProvisioningError

log = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded; charset=utf-8"
CSV = "text/csv; charset=utf-8"
MAX_REQUEST_TIMEOUT_MS = 300_000
RECORD_MIN_SPACING_S = 1.0

ALIAS_PATH = "/onep:v1/stack/alias"
RECORD_PATH = "/onep:v1/stack/record"
ACTIVATE_PATH = "/provision/activate"
DOWNLOAD_PATH = "/provision/download"
TIMESTAMP_PATH = "/timestamp"


def form_encode(pairs: list[tuple[str, str]]) -> str:
    """``a=v&b=w`` with alias and value percent-encoded (spaces as %20, ``+`` as %2B).

    A value holding bytes that are not UTF-8 (kept as surrogate escapes when a device wrote them)
    is sent back as those same bytes.
    """
    return urlencode(pairs, quote_via=quote, safe="", errors="surrogateescape")


def form_decode(text: str) -> list[tuple[str, str]]:
    """The pairs of a form body; percent-escaped bytes that are not UTF-8 are kept as surrogate
    escapes (so a device's echo of such a value is recognised as the same value)."""
    return parse_qsl(text, keep_blank_values=True, errors="surrogateescape")


def http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def parse_if_modified_since(value: str | None) -> float | None:
    """Unix seconds (``1408088412``) or an HTTP-date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


class DeviceHttpApi:
    """Request handler for :class:`~otatui.connector.http_server.HttpServer`."""

    def __init__(self, state: ConnectorState, content: ContentStore, faults: Faults) -> None:
        self.state = state
        self.content = content
        self.faults = faults

    async def __call__(self, request: Request, exchange: Exchange) -> Response:
        if self.faults.delay_s > 0:
            await asyncio.sleep(self.faults.delay_s)
        path = unquote(request.path)
        failure = self.faults.take_failure(path)
        if failure is not None:
            return Response.text(failure, "injected failure\n")
        if path == ALIAS_PATH:
            return await self._alias(request, exchange)
        if path == RECORD_PATH:
            return self._only(request, "POST") or self._record(request)
        if path == ACTIVATE_PATH:
            return self._only(request, "POST") or self._activate(request)
        if path == DOWNLOAD_PATH:
            return self._only(request, "GET", "HEAD") or self._download(request)
        if path == TIMESTAMP_PATH:
            return self._only(request, "GET", "HEAD") or Response.text(200, str(int(time.time())))
        return Response.text(404, "not found\n")

    @staticmethod
    def _only(request: Request, *methods: str) -> Response | None:
        if request.method in methods:
            return None
        response = Response.text(405, "method not allowed\n")
        response.headers.append(("Allow", ", ".join(methods)))
        return response

    def _auth(self, request: Request) -> Device | None:
        return self.state.authenticate(request.headers.get("x-exosite-cik"))

    # ----- provisioning -------------------------------------------------------------------------

    def _activate(self, request: Request) -> Response:
        fields = dict(form_decode(request.body.decode("utf-8", "replace")))
        identity = fields.get("id") or fields.get("sn")
        if not identity:
            return Response.text(400, "missing id (or sn) in the form body\n")
        try:
            token = self.state.activate(identity)
        except ProvisioningError as exc:
            return Response.text(exc.status, f"{exc}\n")
        return Response.text(200, token)

    # ----- resources ----------------------------------------------------------------------------

    async def _alias(self, request: Request, exchange: Exchange) -> Response:
        bad_method = self._only(request, "GET", "POST")
        if bad_method is not None:
            return bad_method
        device = self._auth(request)
        if device is None:
            return Response.text(401, "missing or invalid credentials\n")
        if request.method == "POST" and request.body:
            writes = form_decode(request.body.decode("utf-8", "surrogateescape"))
            self.state.device_write(device, writes, via="http")
            if self.faults.take_unconfirmed():
                raise ClientGone("fault: write stored, connection cut before the answer")
        aliases = [alias for alias, _ in form_decode(request.query)]
        if not aliases:
            return Response(204) if request.method == "POST" else Response.text(400, "no alias\n")
        timeout_ms = request.headers.get("request-timeout")
        if request.method == "GET" and timeout_ms is not None:
            try:
                ms = min(max(int(timeout_ms), 0), MAX_REQUEST_TIMEOUT_MS)
            except ValueError:
                return Response.text(400, "Request-Timeout must be milliseconds\n")
            since = parse_if_modified_since(request.headers.get("if-modified-since"))
            deadline = asyncio.get_running_loop().time() + ms / 1000
            return await self._long_poll(request, exchange, device, aliases, deadline, since)
        values = [
            (alias, r.value)
            for alias in aliases
            if (r := device.resources.get(alias)) is not None and r.value != ""
        ]
        if not values:
            return Response(204)
        return Response(200, [("Content-Type", FORM)], form_encode(values).encode("utf-8"))

    async def _long_poll(
        self,
        request: Request,
        exchange: Exchange,
        device: Device,
        aliases: list[str],
        deadline: float,
        since: float | None,
    ) -> Response:
        loop = asyncio.get_running_loop()
        while True:
            if self._auth(request) is not device:
                return Response.text(401, "missing or invalid credentials\n")
            changed = self.state.change_event(device)
            found = self.state.pending(device, aliases, since)
            if found:
                body = form_encode([(r.alias, r.value) for r in found]).encode("utf-8")
                headers = [
                    ("Content-Type", FORM),
                    ("Last-Modified", http_date(max(r.set_at for r in found))),
                ]
                return Response(200, headers, body)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return Response(304)
            await exchange.wait_until(changed, deadline)

    def _record(self, request: Request) -> Response:
        device = self._auth(request)
        if device is None:
            return Response.text(401, "missing or invalid credentials\n")
        points: list[tuple[str, float, str]] = []
        stamps: dict[str, list[tuple[float, str]]] = {}
        alias: str | None = None
        for key, value in form_decode(request.body.decode("utf-8", "surrogateescape")):
            if key == "alias":
                alias = value
                continue
            if alias is None:
                return Response.text(400, "a timestamp came before any alias=\n")
            try:
                ts = float(key)
            except ValueError:
                return Response.text(400, f"not a timestamp: {key[:40]!r}\n")
            points.append((alias, ts, value))
            stamps.setdefault(alias, []).append((ts, key))
        conflicts: list[tuple[str, str]] = []
        for name, entries in stamps.items():
            entries.sort()
            clashing: list[str] = []
            for (a, a_text), (b, b_text) in itertools.pairwise(entries):
                if b - a < RECORD_MIN_SPACING_S:
                    clashing += [t for t in (a_text, b_text) if t not in clashing]
            if clashing:
                conflicts.append((name, ",".join(clashing)))
        if conflicts:
            return Response(409, [("Content-Type", FORM)], form_encode(conflicts).encode())
        if not points:
            return Response.text(400, "nothing to record\n")
        self.state.device_record(device, points, via="http-record")
        if self.faults.take_unconfirmed():
            raise ClientGone("fault: record stored, connection cut before the answer")
        return Response(204)

    # ----- content ------------------------------------------------------------------------------

    def _download(self, request: Request) -> Response:
        if self._auth(request) is None:
            return Response.text(401, "missing or invalid credentials\n")
        params = dict(form_decode(request.query))
        content_id = params.get("id")
        if content_id is None:
            listing = "".join(f"{c.id}\n" for c in self.content.items())
            return Response.text(200, listing, CSV)
        item = self.content.get(content_id)
        if item is None:
            return Response.text(404, "no such content\n")
        if params.get("info", "").lower() == "true":
            return Response.text(200, item.info_line(), CSV)
        return self._serve_file(request, item)

    def _serve_file(self, request: Request, item: Content) -> Response:
        stat = item.path.stat()
        size = stat.st_size
        etag = f'"{size:x}-{stat.st_mtime_ns:x}"'
        headers = [
            ("Content-Type", item.content_type),
            ("Accept-Ranges", "bytes"),
            ("ETag", etag),
            ("Last-Modified", http_date(item.updated)),
        ]
        drop = self.faults.take_drop()
        range_header = request.headers.get("range")
        if_range = request.headers.get("if-range")
        if range_header is not None and (if_range is None or if_range == etag):
            try:
                span = parse_range(range_header, size)
            except ValueError:
                span = (0, size, False)  # not one well-formed byte range: send everything
            if span is None:
                headers.append(("Content-Range", f"bytes */{size}"))
                return Response(416, headers)
            first, end, partial = span
            if partial:
                headers.append(("Content-Range", f"bytes {first}-{end - 1}/{size}"))
                return Response(206, headers, FileBody(item.path, first, end - first), drop)
        return Response(200, headers, FileBody(item.path, 0, size), drop_after=drop)


def parse_range(header: str, size: int) -> tuple[int, int, bool] | None:
    """``bytes=X-Y`` / ``X-`` / ``-Y`` → (first, end exclusive, True); None = unsatisfiable.

    Raises ValueError for a header that is not one well-formed byte range (another unit, several
    ranges, Y < X): RFC 9110 lets the server ignore it and send the whole file.
    """
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        raise ValueError("not a single byte range")
    first_text, dash, last_text = (part.strip() for part in spec.strip().partition("-"))
    if not dash or not (first_text or last_text):
        raise ValueError("not a byte range")
    if (first_text and not first_text.isdigit()) or (last_text and not last_text.isdigit()):
        raise ValueError("not a byte range")
    if not first_text:
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return None
        return (max(size - suffix, 0), size, True)
    first = int(first_text)
    if last_text and int(last_text) < first:
        raise ValueError("range ends before it starts")
    if first >= size:
        return None
    end = size if not last_text else min(int(last_text) + 1, size)
    return (first, end, True)
