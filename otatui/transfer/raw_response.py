"""One HTTP/1.1 GET on a plain blocking socket: the fast transport for big payload bodies.

Run from a worker thread, never from the event loop. :func:`open_raw` connects (TLS with the
caller's context for ``https``), sends exactly the headers it is given plus ``Host`` (the
credential rule stays in :mod:`otatui.transfer.source`), and parses the status line and headers
with h11. The body is then read with :meth:`RawResponse.readinto`: for a ``Content-Length`` or
read-until-close body straight from the socket into the caller's buffer (``recv_into``, no
per-chunk objects), for a chunked body through h11. The connection is never reused.

Failures are raised as the matching :mod:`httpx` exceptions (``ConnectError``, ``ReadTimeout``,
``ReadError``, ``RemoteProtocolError``...), so the download job handles both transports alike.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

import h11
import httpx

HEAD_READ = 64 * 1024
MAX_HEAD_BYTES = 64 * 1024
NO_BODY_STATUSES = frozenset({204, 304})


class RawResponse:
    """Status and headers of a GET whose body is still on the socket (see the module doc)."""

    def __init__(
        self,
        sock: socket.socket,
        conn: h11.Connection,
        response: h11.Response,
        url: httpx.URL,
    ) -> None:
        self.url = url
        self.status_code: int = response.status_code
        self.headers = httpx.Headers(
            [(name.decode("latin-1"), value.decode("latin-1")) for name, value in response.headers]
        )
        self._sock = sock
        self._conn = conn
        self._lock = threading.Lock()
        self._readers = 0
        self._closing = False
        self._closed = False
        self._pending = memoryview(b"")
        self._chunked = False
        self._remaining: int | None = None  # None: until the server closes
        encoding = self.headers.get("transfer-encoding", "")
        if self.status_code in NO_BODY_STATUSES:
            self._remaining = 0
        elif "chunked" in encoding.lower():
            self._chunked = True  # h11 decodes the framing, the events carry the data
        else:
            length = self.headers.get("content-length")
            self._remaining = int(length) if length is not None else None
            leftover = conn.trailing_data[0]  # body bytes read together with the head
            if self._remaining is not None:
                leftover = leftover[: self._remaining]
            self._pending = memoryview(leftover)

    def readinto(self, view: memoryview) -> int:
        """Up to ``len(view)`` body bytes into ``view``; 0 at the end of the body.

        A connection closed before ``Content-Length`` bytes is also 0 (the caller compares the
        count with what it expected); a chunked body cut short raises ``RemoteProtocolError``;
        after :meth:`close`, ``ReadError``.
        """
        with self._lock:
            if self._closing:
                raise httpx.ReadError("the download was stopped")
            self._readers += 1
        try:
            return self._readinto(view)
        finally:
            if self._leave():  # a close() came while this thread was reading: ours to close
                self._sock.close()

    def _leave(self) -> bool:
        """One reader less; True when the socket is to be closed now (by the caller)."""
        with self._lock:
            self._readers -= 1
            last = self._closing and self._readers == 0 and not self._closed
            self._closed = self._closed or last
            return last

    def _readinto(self, view: memoryview) -> int:
        if not view:
            return 0
        if self._pending:
            n = min(len(view), len(self._pending))
            view[:n] = self._pending[:n]
            self._pending = self._pending[n:]
            if self._remaining is not None and not self._chunked:
                self._remaining -= n
            return n
        if self._chunked:
            return self._read_chunked(view)
        if self._remaining == 0:
            return 0
        want = view if self._remaining is None else view[: self._remaining]
        n = self._recv_into(want)
        if self._remaining is not None:
            self._remaining -= n
        return n

    def abort(self) -> None:
        """Wake a ``readinto`` blocked in another thread (it then ends or raises). Thread-safe."""
        with self._lock, contextlib.suppress(OSError):
            if self._closed:  # its descriptor number may already belong to another file
                return
            # socket.socket's own shutdown, also for an SSLSocket: its override drops the TLS
            # object, which the reading thread may be using at this very moment.
            socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    def close(self) -> None:
        """Close the connection, once. Thread-safe: a ``readinto`` running in another thread is
        woken (:meth:`abort`) and closes the socket itself when it returns, so the descriptor is
        never closed under a reader (which would read "Bad file descriptor", or worse, a
        descriptor number the system already gave to another file)."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            busy = self._readers > 0
            self._closed = not busy
        if busy:
            self.abort()
        else:
            self._sock.close()

    # -- internals ----------------------------------------------------------------------------

    def _read_chunked(self, view: memoryview) -> int:
        while True:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc) or "malformed chunked body") from None
            if event is h11.NEED_DATA:
                data = bytearray(HEAD_READ)
                n = self._recv_into(memoryview(data))
                self._conn.receive_data(bytes(data[:n]))
            elif isinstance(event, h11.Data):
                self._pending = memoryview(event.data)
                return self._readinto(view)
            else:  # EndOfMessage (or ConnectionClosed after it)
                return 0

    def _recv_into(self, view: memoryview) -> int:
        try:
            return self._sock.recv_into(view)
        except TimeoutError:
            raise httpx.ReadTimeout("no data from the server in time") from None
        except ssl.SSLError as exc:
            raise httpx.ReadError(f"TLS error: {exc.reason or exc}") from None
        except OSError as exc:
            raise httpx.ReadError(exc.strerror or type(exc).__name__) from None


@dataclass(frozen=True, slots=True)
class RawTransport:
    """Which downloads the raw transport takes, and with what settings.

    It serves ``http`` URLs, and ``https`` ones when it was given the TLS context of the shared
    client (without it, https stays with the client, whose trust settings it cannot read). A
    scheme that goes through a proxy from the environment (``http_proxy``, ``https_proxy``,
    ``all_proxy``; ``no_proxy`` is not looked at) stays with the client too.
    """

    ssl_context: ssl.SSLContext | None
    timeout: httpx.Timeout
    proxied: frozenset[str] = frozenset()

    @classmethod
    def like(cls, client: httpx.AsyncClient, ssl_context: ssl.SSLContext | None) -> RawTransport:
        """Settings matching ``client``: its timeouts, and its use of environment proxies."""
        proxied: frozenset[str] = frozenset()
        if client.trust_env:
            proxies = {k.lower() for k, v in urllib.request.getproxies().items() if v}
            proxied = frozenset({"http", "https"} if "all" in proxies else proxies)
        return cls(ssl_context, client.timeout, proxied)

    def serves(self, url: httpx.URL) -> bool:
        scheme = url.scheme.lower()
        if scheme in self.proxied:
            return False
        return scheme == "http" or (scheme == "https" and self.ssl_context is not None)

    def open(self, url: httpx.URL, headers: Mapping[str, str]) -> RawResponse:
        """Blocking: see :func:`open_raw`."""
        return open_raw(url, headers, ssl_context=self.ssl_context, timeout=self.timeout)


def open_raw(
    url: httpx.URL,
    headers: Mapping[str, str],
    *,
    ssl_context: ssl.SSLContext | None,
    timeout: httpx.Timeout,
) -> RawResponse:
    """Connect, send ``GET url`` with ``headers`` (+ ``Host``), read the head. Blocking."""
    scheme = url.scheme.lower()
    if scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol(f"not an http(s) URL: {scheme}")
    if scheme == "https" and ssl_context is None:
        raise httpx.ConnectError("no TLS settings for an https download")
    host = url.host
    port = url.port if url.port is not None else (443 if scheme == "https" else 80)
    sock = _connect(host, port, timeout.connect)
    try:
        if scheme == "https":
            assert ssl_context is not None
            sock = _tls(sock, ssl_context, host)
        sock.settimeout(timeout.read)
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        request = h11.Request(
            method="GET",
            target=url.raw_path,
            headers=[
                (b"Host", url.netloc),
                *((k.encode(), v.encode()) for k, v in headers.items()),
            ],
        )
        _send_all(sock, (conn.send(request) or b"") + (conn.send(h11.EndOfMessage()) or b""))
        response = _read_head(sock, conn)
        return RawResponse(sock, conn, response, url)
    except BaseException:
        sock.close()
        raise


def _connect(host: str, port: int, timeout: float | None) -> socket.socket:
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        raise httpx.ConnectTimeout(f"no connection to {host}:{port} in time") from None
    except OSError as exc:
        raise httpx.ConnectError(f"{host}:{port}: {exc.strerror or exc}") from None


def _tls(sock: socket.socket, context: ssl.SSLContext, host: str) -> socket.socket:
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except TimeoutError:
        raise httpx.ConnectTimeout(f"no TLS handshake with {host} in time") from None
    except ssl.SSLCertVerificationError as exc:
        raise httpx.ConnectError(f"TLS: {exc.verify_message or exc.reason}") from None
    except (ssl.SSLError, OSError) as exc:
        raise httpx.ConnectError(f"TLS: {getattr(exc, 'reason', None) or exc}") from None


def _send_all(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except TimeoutError:
        raise httpx.WriteTimeout("the server did not take the request in time") from None
    except OSError as exc:
        raise httpx.WriteError(exc.strerror or type(exc).__name__) from None


def _read_head(sock: socket.socket, conn: h11.Connection) -> h11.Response:
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc) or "malformed response head") from None
        if event is h11.NEED_DATA:
            try:
                data = sock.recv(HEAD_READ)
            except TimeoutError:
                raise httpx.ReadTimeout("no answer from the server in time") from None
            except OSError as exc:
                raise httpx.ReadError(exc.strerror or type(exc).__name__) from None
            if not data:
                raise httpx.RemoteProtocolError(
                    "the server closed the connection without an answer"
                )
            conn.receive_data(data)
        elif isinstance(event, h11.Response):
            return event
        elif isinstance(event, h11.ConnectionClosed):
            raise httpx.RemoteProtocolError("the server closed the connection without an answer")
        # InformationalResponse (1xx): keep reading
