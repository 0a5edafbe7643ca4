"""RawResponse (the raw transport's HTTP/1.1 GET on a blocking socket) against canned answers
from a small server on 127.0.0.1: framings, 1xx, errors as httpx errors, timeouts, abort."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from otatui.transfer.raw_response import RawTransport, open_raw

# ----- RawResponse against canned answers ---------------------------------------------------------


@contextlib.contextmanager
def canned(*answers: bytes, hold: bool = False) -> Iterator[tuple[str, list[bytes]]]:
    """A one-request-per-connection server on 127.0.0.1 sending each answer then closing."""
    listener = socket.create_server(("127.0.0.1", 0))
    requests: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        for answer in answers:
            conn, _ = listener.accept()
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    got = conn.recv(65536)
                    if not got:
                        break
                    head += got
                requests.append(head)
                conn.sendall(answer)
                if hold:
                    stop.wait(10)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", requests
    finally:
        stop.set()
        listener.close()
        thread.join(10)


TIMEOUT = httpx.Timeout(5.0)


def read_all(url: str, **kw: object) -> tuple[int, httpx.Headers, bytes]:
    response = open_raw(httpx.URL(url), {"User-Agent": "t"}, ssl_context=None, timeout=TIMEOUT)
    try:
        out = bytearray()
        buf = bytearray(1000)
        while n := response.readinto(memoryview(buf)):
            out += buf[:n]
        return response.status_code, response.headers, bytes(out)
    finally:
        response.close()


def test_raw_length_body_with_bytes_read_along_with_the_head():
    body = os.urandom(5000)
    answer = b'HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nETag: "a"\r\n\r\n' + body + b"junk"
    with canned(answer) as (url, requests):
        status, headers, got = read_all(url + "/fw.bin?x=1")
    assert status == 200 and headers["etag"] == '"a"' and got == body
    (request,) = requests
    lines = request.decode().split("\r\n")
    assert lines[0] == "GET /fw.bin?x=1 HTTP/1.1"
    assert {line.split(":")[0].lower() for line in lines[1:] if line} == {"host", "user-agent"}


def test_raw_body_until_close_and_informational_answers_skipped():
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\n" + b"x" * 3000
    with canned(answer) as (url, _):
        status, _, got = read_all(url + "/a")
    assert status == 200 and got == b"x" * 3000


def test_raw_chunked_body_and_a_cut_chunked_body():
    whole = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nab"
    with canned(whole, cut) as (url, _):
        assert read_all(url + "/a")[2] == b"helloabc"
        with pytest.raises(httpx.RemoteProtocolError):
            read_all(url + "/b")


def test_raw_short_length_body_ends_with_zero():
    with canned(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"y" * 40) as (url, _):
        assert read_all(url + "/a")[2] == b"y" * 40  # the caller sees 40 of 100


def test_raw_errors_are_httpx_errors():
    with canned(b"garbage\r\n\r\n", b"") as (url, _):
        with pytest.raises(httpx.RemoteProtocolError):
            read_all(url + "/a")
        with pytest.raises(httpx.RemoteProtocolError, match="without an answer"):
            read_all(url + "/b")
    with socket.create_server(("127.0.0.1", 0)) as gone:
        port = gone.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        read_all(f"http://127.0.0.1:{port}/a")


def test_raw_read_timeout_and_abort_from_another_thread():
    with canned(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", hold=True) as (url, _):
        quick = httpx.Timeout(5.0, read=0.2)
        response = open_raw(httpx.URL(url + "/a"), {}, ssl_context=None, timeout=quick)
        buf = memoryview(bytearray(100))
        assert response.readinto(buf) == 2
        with pytest.raises(httpx.ReadTimeout):
            response.readinto(buf)
        response.close()
    with canned(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", hold=True) as (url, _):
        response = open_raw(httpx.URL(url + "/a"), {}, ssl_context=None, timeout=TIMEOUT)
        threading.Timer(0.1, response.abort).start()
        assert response.readinto(buf) == 0  # woken at once, not after the 5 s timeout
        response.close()


def test_raw_close_under_a_reader_wakes_it_and_closes_the_socket_once():
    with canned(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", hold=True) as (url, _):
        response = open_raw(httpx.URL(url + "/a"), {}, ssl_context=None, timeout=TIMEOUT)
        sock = response._sock
        got: list[int | BaseException] = []

        def read() -> None:
            try:
                got.append(response.readinto(memoryview(bytearray(100))))
            except BaseException as exc:
                got.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        threading.Event().wait(0.1)  # the reader is blocked in recv_into
        response.close()  # from another thread, as the event loop does on a cancel
        reader.join(5)
        assert not reader.is_alive()
        assert got == [0]  # woken by the shutdown, never "Bad file descriptor"
        assert sock.fileno() == -1  # closed by the reader once it left the socket
        response.close()  # a second close does nothing
        response.abort()  # nor does an abort after the close
        with pytest.raises(httpx.ReadError, match="stopped"):
            response.readinto(memoryview(bytearray(10)))


def test_raw_https_needs_a_tls_context_and_proxies_keep_the_client(
    monkeypatch: pytest.MonkeyPatch,
):
    with pytest.raises(httpx.ConnectError, match="no TLS settings"):
        open_raw(httpx.URL("https://127.0.0.1:1/a"), {}, ssl_context=None, timeout=TIMEOUT)
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)
    plain = RawTransport.like(httpx.AsyncClient(), None)
    assert plain.serves(httpx.URL("http://h/a")) and not plain.serves(httpx.URL("https://h/a"))
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:3128")
    proxied = RawTransport.like(httpx.AsyncClient(), None)
    assert not proxied.serves(httpx.URL("http://h/a"))
    ignoring = RawTransport.like(httpx.AsyncClient(trust_env=False), None)
    assert ignoring.serves(httpx.URL("http://h/a"))
