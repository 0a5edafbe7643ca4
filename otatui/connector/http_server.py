"""A small HTTP/1.1 server on asyncio streams with ``h11`` doing the protocol work.

Why this and not aiohttp/starlette: ``h11`` is already installed (httpx depends on it), it keeps
the whole request/response cycle, keep-alive and framing correct, and its
``send_with_data_passthrough`` lets a file body go out with ``loop.sendfile`` (zero-copy
``os.sendfile`` on plain TCP, a read/write fallback under TLS), so large downloads are not
CPU-bound in Python. One coroutine per connection, no threads, so a thousand devices holding long
polls cost a thousand small tasks. While a handler waits (a long poll), the connection keeps
reading so a client that goes away is noticed at once instead of at the poll timeout.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from pathlib import Path
from typing import cast

import h11

from .connections import Connections

log = logging.getLogger(__name__)

_READ_CHUNK = 65536


class ClientGone(Exception):
    """The client closed the connection while its request was being handled."""


@dataclass
class Request:
    method: str
    path: str
    query: str  # raw, still percent-encoded
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes
    peer: str


@dataclass
class FileBody:
    """``count`` bytes of ``path`` from ``offset``, sent with ``loop.sendfile``."""

    path: Path
    offset: int
    count: int


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | FileBody = b""
    drop_after: int | None = None  # fault injection: cut the connection after this many bytes

    @classmethod
    def text(
        cls, status: int, text: str, content_type: str = "text/plain; charset=utf-8"
    ) -> Response:
        return cls(status, [("Content-Type", content_type)], text.encode("utf-8"))


class _FileRegion:
    """Placeholder handed to h11 in a Data event; h11 only calls ``len()`` on it."""

    def __init__(self, body: FileBody) -> None:
        self.body = body

    def __len__(self) -> int:
        return self.body.count


class Exchange:
    """What a handler may do besides returning a response: wait while watching the client."""

    def __init__(self, conn: h11.Connection, reader: asyncio.StreamReader) -> None:
        self._conn = conn
        self._reader = reader
        self._watch: asyncio.Task[None] | None = None

    async def wait_until(self, event: asyncio.Event, deadline: float) -> bool:
        """Wait for ``event`` until loop time ``deadline``; True if set. Raises ClientGone."""
        if self._watch is None:
            self._watch = asyncio.create_task(self._read_until_eof())
        waiter = asyncio.create_task(event.wait())
        try:
            done, _ = await asyncio.wait(
                {waiter, self._watch},
                timeout=max(deadline - asyncio.get_running_loop().time(), 0),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            waiter.cancel()
        if self._watch in done:
            raise ClientGone
        return waiter in done

    async def _read_until_eof(self) -> None:
        # Bytes that arrive meanwhile (a pipelined request) are kept by h11 for the next cycle.
        while True:
            data = await self._reader.read(_READ_CHUNK)
            if not data:
                return
            self._conn.receive_data(data)

    async def aclose(self) -> None:
        """Stop watching; once this returns the connection may read again."""
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.wait({self._watch})
            self._watch = None


Handler = Callable[[Request, Exchange], Awaitable[Response]]


class HttpServer:
    """Serves ``handler`` on every connection given to it (``asyncio.start_server`` callback)."""

    def __init__(self, handler: Handler, *, server_name: str = "Murano", max_body: int) -> None:
        self.handler = handler
        self.server_name = server_name
        self.max_body = max_body
        self._connections = Connections()

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with self._connections.serving():
                await self._serve(reader, writer)
        except (ConnectionError, ssl.SSLError, ClientGone, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Shutting down. This is the connection's top-level task: ending it cancelled makes
            # Python 3.11's start_server callback log a spurious "Unhandled exception".
            pass
        except h11.ProtocolError as exc:
            log.debug("HTTP protocol error from client: %s", exc)
        finally:
            close_gracefully(writer)

    async def close_connections(self) -> None:
        await self._connections.close_all()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        while True:
            try:
                request = await self._read_request(conn, reader, peer)
            except _TooLarge:
                await self._send(conn, writer, Response.text(413, "request body too large\n"))
                return
            except h11.RemoteProtocolError as exc:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    status = exc.error_status_hint
                    await self._send(conn, writer, Response.text(status, "bad request\n"))
                return
            if request is None:
                return
            exchange = Exchange(conn, reader)
            try:
                response = await self.handler(request, exchange)
            except ClientGone:
                return
            except Exception:
                log.exception("connector handler failed for %s %s", request.method, request.path)
                response = Response.text(500, "internal error\n")
            finally:
                await exchange.aclose()
            if not await self._send(conn, writer, response, head=request.method == "HEAD"):
                return
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader, peer: str
    ) -> Request | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(_READ_CHUNK)
                conn.receive_data(data)  # b"" = EOF, h11 turns it into ConnectionClosed/error
                continue
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None
            if isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > self.max_body:
                    raise _TooLarge
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                target = head.target.decode("latin-1")
                path, _, query = target.partition("?")
                headers = {
                    k.decode("latin-1").lower(): v.decode("latin-1") for k, v in head.headers
                }
                return Request(head.method.decode("ascii"), path, query, headers, bytes(body), peer)

    async def _send(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        response: Response,
        *,
        head: bool = False,
    ) -> bool:
        """Send ``response``; False when the connection must end (dropped on purpose)."""
        body = response.body
        length = body.count if isinstance(body, FileBody) else len(body)
        headers = [
            ("Date", formatdate(usegmt=True)),
            ("Server", self.server_name),
            *response.headers,
            ("Content-Length", str(length)),
        ]
        reason = _reason(response.status)
        writer.write(
            conn.send(h11.Response(status_code=response.status, headers=headers, reason=reason))
        )
        if length and not head:
            if isinstance(body, FileBody):
                region = _FileRegion(body)
                chunks = conn.send_with_data_passthrough(h11.Data(data=cast(bytes, region))) or []
            else:
                chunks = conn.send_with_data_passthrough(h11.Data(data=body)) or []
            for chunk in chunks:
                if isinstance(chunk, _FileRegion):
                    if not await _sendfile(writer, chunk.body, response.drop_after):
                        return False
                elif response.drop_after is not None:
                    writer.write(bytes(chunk)[: response.drop_after])
                    await writer.drain()
                    writer.transport.abort()
                    return False
                else:
                    writer.write(chunk)
        writer.write(conn.send(h11.EndOfMessage()) or b"")
        await writer.drain()
        return True


class _TooLarge(Exception):
    pass


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


async def _sendfile(writer: asyncio.StreamWriter, body: FileBody, drop_after: int | None) -> bool:
    count = body.count if drop_after is None else min(body.count, drop_after)
    await writer.drain()
    loop = asyncio.get_running_loop()
    with body.path.open("rb") as f:
        if count:
            await loop.sendfile(writer.transport, f, body.offset, count, fallback=True)
    if drop_after is not None and drop_after < body.count:
        writer.transport.abort()
        return False
    return True


def close_gracefully(writer: asyncio.StreamWriter, linger: float = 5.0) -> None:
    """Close after what was written is sent; abort if the peer has not taken it in ``linger`` s."""
    transport = writer.transport
    if transport.is_closing():
        return
    writer.close()
    asyncio.get_running_loop().call_later(linger, transport.abort)
