"""A small HTTP/1.1 file server for the download tests, in a thread, on 127.0.0.1.

It records every request's headers and can misbehave on demand: drop the connection after N
body bytes, answer a Range with 206, with 200 + Content-Range, or ignore it, send both
Content-Length and chunked framing, answer with scripted statuses, redirect, set cookies, and
check a device token like the connector's content endpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import random
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

RangeMode = Literal["206", "200", "ignore"]
SEND_BLOCK = 64 * 1024


@dataclass
class Resource:
    body: bytes
    etag: str | None = '"v1"'
    last_modified: str | None = None
    range_mode: RangeMode = "206"
    honor_if_range: bool = True
    chunked: bool = False
    content_length: bool = True
    drops: list[int] = field(default_factory=list)
    """Per request, in order: close the connection after this many body bytes."""
    statuses: list[int] = field(default_factory=list)
    """Per request, in order: answer this status (no body) instead of the file."""
    redirect: str | None = None
    redirect_status: int = 302
    token: str | None = None
    """When set, requests without ``X-Exosite-CIK: <token>`` get 401."""
    set_cookie: str | None = None
    delay_per_block_s: float = 0.0

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


@dataclass(frozen=True)
class Recorded:
    method: str
    target: str
    headers: dict[str, str]
    """Lower-case names; repeated headers joined with ", "."""


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        owner = self.server.owner
        with owner.lock:
            owner.requests.append(Recorded("GET", self.path, headers))
            resource = owner.resources.get(self.path)
            status = resource.statuses.pop(0) if resource and resource.statuses else None
            drop = resource.drops.pop(0) if resource and resource.drops else None
        if resource is None:
            self._empty(404)
            return
        if resource.token is not None and headers.get("x-exosite-cik") != resource.token:
            self._empty(401)
            return
        if status is not None:
            self._empty(status)
            return
        if resource.redirect is not None:
            self.send_response(resource.redirect_status)
            self.send_header("Location", resource.redirect)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._serve(resource, headers, drop)

    def _empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _serve(self, r: Resource, headers: dict[str, str], drop: int | None) -> None:
        size = len(r.body)
        start, end, partial = 0, size, False
        wanted = re.fullmatch(r"bytes=(\d+)-", headers.get("range", ""))
        if_range = headers.get("if-range")
        fresh = if_range is None or not r.honor_if_range or if_range in (r.etag, r.last_modified)
        if wanted is not None and r.range_mode != "ignore" and fresh:
            start = int(wanted.group(1))
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            partial = True
        self.send_response(206 if partial and r.range_mode == "206" else 200)
        if partial:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        if r.content_length:
            self.send_header("Content-Length", str(end - start))
        if r.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        if r.etag is not None:
            self.send_header("ETag", r.etag)
        if r.last_modified is not None:
            self.send_header("Last-Modified", r.last_modified)
        if r.set_cookie is not None:
            self.send_header("Set-Cookie", r.set_cookie)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        limit = end if drop is None else min(end, start + drop)
        pos = start
        try:
            while pos < limit:
                block = r.body[pos : min(limit, pos + SEND_BLOCK)]
                if r.chunked:
                    self.wfile.write(f"{len(block):x}\r\n".encode() + block + b"\r\n")
                else:
                    self.wfile.write(block)
                pos += len(block)
                if r.delay_per_block_s:
                    self.wfile.flush()
                    time.sleep(r.delay_per_block_s)
            if drop is not None and limit < end:
                self.wfile.flush()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            if r.chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    owner: FileServer

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        with self.owner.lock:
            self.owner.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self.owner.lock:
            self.owner.connections.discard(request)
        super().shutdown_request(request)


class FileServer:
    """``with FileServer() as srv: srv.add("/fw.bin", Resource(data)); srv.url("/fw.bin")``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.resources: dict[str, Resource] = {}
        self.requests: list[Recorded] = []
        self.connections: set[socket.socket] = set()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, target: str) -> str:
        return self.base_url + target

    def add(self, target: str, resource: Resource) -> Resource:
        with self.lock:
            self.resources[target] = resource
        return resource

    def requests_for(self, target: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.target == target]

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        with self.lock:
            open_connections = list(self.connections)
        for conn in open_connections:  # keep-alive handlers wait for a next request: end them
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()  # joins the handler threads
        self._thread.join(timeout=5)


@contextlib.contextmanager
def file_server() -> Iterator[FileServer]:
    with FileServer() as server:
        yield server


def payload(size: int, seed: int = 1) -> bytes:
    """``size`` deterministic pseudo-random bytes (no short period that could hide an offset)."""
    return random.Random(seed).randbytes(size)
