"""The local connector's HTTP device API over real sockets on 127.0.0.1, httpx as the device."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest

from otatui.connector import Connector
from otatui.connector.http_api import parse_range

TOKEN = "Ed9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK9y"
FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
AUTH = {"X-Exosite-CIK": TOKEN}
ALIAS = "/onep:v1/stack/alias"
RECORD = "/onep:v1/stack/record"


@pytest.fixture
async def connector() -> AsyncIterator[Connector]:
    async with Connector(devices=[("dev1", TOKEN), ("fresh", None)]) as c:
        yield c


@pytest.fixture
async def client(connector: Connector) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=connector.http_url, timeout=10) as c:
        yield c


async def long_poll(
    client: httpx.AsyncClient, alias: str, timeout_ms: int, since: str | None = None
) -> httpx.Response:
    headers = {**AUTH, "Request-Timeout": str(timeout_ms)}
    if since is not None:
        headers["If-Modified-Since"] = since
    return await client.get(f"{ALIAS}?{alias}", headers=headers)


# ----- provisioning -----------------------------------------------------------------------------


async def test_activate_returns_a_token_once(client: httpx.AsyncClient, connector: Connector):
    r = await client.post("/provision/activate", content="id=fresh", headers=FORM)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    token = r.text
    assert len(token) == 40 and token.isalnum()
    assert connector.device("fresh").provisioned
    w = await client.post(ALIAS, data={"otau_in": "x"}, headers={"X-Exosite-CIK": token})
    assert w.status_code == 204
    again = await client.post("/provision/activate", content="id=fresh", headers=FORM)
    assert again.status_code == 409


@pytest.mark.parametrize("body", ["sn=fresh", "vendor=p1&model=p1&sn=fresh"])
async def test_activate_accepts_sn_and_legacy_forms(client: httpx.AsyncClient, body: str):
    r = await client.post("/provision/activate", content=body, headers=FORM)
    assert r.status_code == 200 and len(r.text) == 40


async def test_activate_refuses_unknown_and_malformed(client: httpx.AsyncClient):
    assert (await client.post("/provision/activate", data={"id": "nobody"})).status_code == 404
    assert (await client.post("/provision/activate", data={"x": "1"})).status_code == 400
    assert (await client.get("/provision/activate")).status_code == 405


async def test_reset_device_allows_activation_again(
    client: httpx.AsyncClient, connector: Connector
):
    connector.reset_device("dev1")
    assert (await client.get(f"{ALIAS}?a", headers=AUTH)).status_code == 401
    r = await client.post("/provision/activate", data={"id": "dev1"})
    assert r.status_code == 200 and r.text != TOKEN


async def test_any_identity_mode_self_registers():
    async with (
        Connector(allow_any_identity=True) as c,
        httpx.AsyncClient(base_url=c.http_url) as client,
    ):
        r = await client.post("/provision/activate", data={"id": "newcomer"})
        assert r.status_code == 200
        assert c.device("newcomer").provisioned


# ----- read / write -----------------------------------------------------------------------------


async def test_write_then_read_round_trips_awkward_values(
    client: httpx.AsyncClient, connector: Connector
):
    value = '{"a":"x&y=z","b":"1+1%","c":"grüße ok"}'
    r = await client.post(ALIAS, data={"otau_in": value, "data_in": "7"}, headers=AUTH)
    assert r.status_code == 204
    reports = connector.reports("dev1")
    assert [(x.alias, x.value, x.via) for x in reports] == [
        ("otau_in", value, "http"),
        ("data_in", "7", "http"),
    ]
    assert reports[0].timestamp == reports[1].timestamp  # one write, one server time
    r = await client.get(f"{ALIAS}?otau_in&data_in", headers=AUTH)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert "+" not in r.text  # spaces travel as %20, plus signs as %2B
    assert parse_qsl(r.text) == [("otau_in", value), ("data_in", "7")]


async def test_read_of_unknown_alias_is_204(client: httpx.AsyncClient):
    r = await client.get(f"{ALIAS}?nothing_here", headers=AUTH)
    assert r.status_code == 204 and r.content == b""


@pytest.mark.parametrize("headers", [{}, {"X-Exosite-CIK": "x" * 40}])
async def test_bad_or_missing_token_is_401_everywhere(client: httpx.AsyncClient, headers):
    assert (await client.get(f"{ALIAS}?a", headers=headers)).status_code == 401
    assert (await client.post(ALIAS, data={"a": "1"}, headers=headers)).status_code == 401
    assert (await client.post(RECORD, content="alias=a&1=x", headers=headers)).status_code == 401
    assert (await client.get("/provision/download", headers=headers)).status_code == 401
    r = await client.get(f"{ALIAS}?a", headers={**headers, "Request-Timeout": "5000"})
    assert r.status_code == 401


async def test_hybrid_post_writes_first_then_reads(client: httpx.AsyncClient, connector: Connector):
    connector.set_value("dev1", "config_x", "cloud")
    r = await client.post(f"{ALIAS}?config_x&data_in", data={"data_in": "42"}, headers=AUTH)
    assert r.status_code == 200
    assert dict(parse_qsl(r.text)) == {"config_x": "cloud", "data_in": "42"}
    r = await client.post(f"{ALIAS}?nothing", data={"data_in": "43"}, headers=AUTH)
    assert r.status_code == 204


async def test_timestamp_needs_no_token(client: httpx.AsyncClient):
    r = await client.get("/timestamp")
    assert r.status_code == 200
    assert abs(int(r.text) - time.time()) < 5


async def test_unknown_path_is_404(client: httpx.AsyncClient):
    assert (await client.get("/nope", headers=AUTH)).status_code == 404


# ----- long poll and acknowledgement ------------------------------------------------------------


async def test_long_poll_times_out_with_304(client: httpx.AsyncClient):
    started = time.monotonic()
    r = await long_poll(client, "config_otau", 300)
    assert r.status_code == 304 and r.content == b""
    assert 0.29 < time.monotonic() - started < 3


async def test_long_poll_wakes_on_set_and_redelivers_until_acked(
    client: httpx.AsyncClient, connector: Connector
):
    manifest = '{"version":"2.0.0","name":"fw","type":"FILE","payload":"fw.bin?x=1&y=2"}'
    poll = asyncio.create_task(long_poll(client, "config_otau", 10_000, "0"))
    await asyncio.sleep(0.2)
    assert not poll.done()
    started = time.monotonic()
    resource = connector.set_config_otau("dev1", manifest)
    r = await poll
    assert time.monotonic() - started < 1
    assert r.status_code == 200
    assert parse_qsl(r.text) == [("config_otau", manifest)]
    last_modified = parsedate_to_datetime(r.headers["last-modified"]).timestamp()
    assert last_modified == int(resource.set_at)
    # Not acknowledged yet: every poll gets it again at once.
    again = await long_poll(client, "config_otau", 5_000, "0")
    assert again.status_code == 200 and parse_qsl(again.text) == [("config_otau", manifest)]
    # The byte-identical echo is the ack; a different value is not.
    w = await client.post(ALIAS, data={"config_otau": manifest + " "}, headers=AUTH)
    assert w.status_code == 204
    assert not connector.resource("dev1", "config_otau").acked  # type: ignore[union-attr]
    # The application's value stays pending (and delivered) despite the device's other write.
    pending = await long_poll(client, "config_otau", 5_000, "0")
    assert parse_qsl(pending.text) == [("config_otau", manifest)]
    await client.post(ALIAS, data={"config_otau": manifest}, headers=AUTH)
    acked = connector.resource("dev1", "config_otau")
    assert acked is not None and acked.acked and acked.value == manifest
    assert connector.reports("dev1", "config_otau")[-1].ack
    # Acknowledged: no re-delivery with If-Modified-Since 0, or with the Last-Modified echoed.
    assert (await long_poll(client, "config_otau", 200, "0")).status_code == 304
    assert (
        await long_poll(client, "config_otau", 200, again.headers["last-modified"])
    ).status_code == 304
    assert (await long_poll(client, "config_otau", 200)).status_code == 304
    # A positive If-Modified-Since older than the value gets it again (a device catching up).
    old = str(int(acked.set_at) - 10)
    assert (await long_poll(client, "config_otau", 200, old)).status_code == 200


async def test_long_poll_ignores_device_writes(client: httpx.AsyncClient):
    poll = asyncio.create_task(long_poll(client, "config_otau", 400))
    await asyncio.sleep(0.1)
    await client.post(ALIAS, data={"config_otau": "from device"}, headers=AUTH)
    assert (await poll).status_code == 304


async def test_long_poll_request_timeout_is_capped(client: httpx.AsyncClient, connector):
    connector.set_value("dev1", "config_otau", "v")
    r = await long_poll(client, "config_otau", 10**9)  # answered at once: pending value
    assert r.status_code == 200
    bad = await client.get(f"{ALIAS}?a", headers={**AUTH, "Request-Timeout": "soon"})
    assert bad.status_code == 400


async def test_a_thousand_concurrent_long_polls_wake_together(connector: Connector):
    # Raw sockets: one httpx pool with 1000 connections is itself the bottleneck (httpcore
    # scans the whole pool for every request and response: ~24 s here for 1000 answers).
    n = 1000
    for i in range(n):
        connector.add_device(f"d{i}", f"{i:040d}")

    async def poll(i: int) -> tuple[bytes, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", connector.ports["http"])
        writer.write(
            f"GET {ALIAS}?config_otau HTTP/1.1\r\nHost: x\r\nX-Exosite-CIK: {i:040d}\r\n"
            "Request-Timeout: 20000\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        body = await reader.readexactly(length)
        writer.close()
        return head.split(b" ")[1], body

    polls = [asyncio.create_task(poll(i)) for i in range(n)]
    for _ in range(200):
        if connector.http.connection_count == n:
            break
        await asyncio.sleep(0.05)
    assert connector.http.connection_count == n
    assert not any(p.done() for p in polls)
    started = time.monotonic()
    for i in range(n):
        connector.set_value(f"d{i}", "config_otau", f"m{i}")
    answers = await asyncio.gather(*polls)
    assert time.monotonic() - started < 5
    assert answers == [(b"200", f"config_otau=m{i}".encode()) for i in range(n)]


async def test_connection_is_reused_after_a_long_poll(connector: Connector):
    reader, writer = await asyncio.open_connection("127.0.0.1", connector.ports["http"])
    writer.write(
        f"GET {ALIAS}?config_otau HTTP/1.1\r\nHost: x\r\nX-Exosite-CIK: {TOKEN}\r\n"
        "Request-Timeout: 10000\r\n\r\n".encode()
    )
    await asyncio.sleep(0.1)
    connector.set_value("dev1", "config_otau", "v")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and await reader.readexactly(13) == b"config_otau=v"
    for _ in range(3):  # the same connection keeps serving
        writer.write(b"GET /timestamp HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(2):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        await reader.readexactly(int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]))
    writer.close()


async def test_stopping_with_open_connections_is_quiet(caplog: pytest.LogCaptureFixture):
    async with Connector(devices=[("dev1", TOKEN)]) as c:
        idle = await asyncio.open_connection("127.0.0.1", c.ports["http"])
        polling = await asyncio.open_connection("127.0.0.1", c.ports["http"])
        polling[1].write(
            f"GET {ALIAS}?a HTTP/1.1\r\nHost: x\r\nX-Exosite-CIK: {TOKEN}\r\n"
            "Request-Timeout: 60000\r\n\r\n".encode()
        )
        mqtt = await asyncio.open_connection("127.0.0.1", c.ports["mqtt"])
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.1)
    for _, writer in (idle, polling, mqtt):
        writer.close()
    assert [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")] == []


async def test_client_leaving_a_long_poll_frees_it(connector: Connector):
    _, writer = await asyncio.open_connection("127.0.0.1", connector.ports["http"])
    writer.write(
        f"GET {ALIAS}?config_otau HTTP/1.1\r\nHost: x\r\nX-Exosite-CIK: {TOKEN}\r\n"
        "Request-Timeout: 60000\r\n\r\n".encode()
    )
    await writer.drain()
    await asyncio.sleep(0.2)
    assert connector.http.connection_count == 1
    writer.close()
    await writer.wait_closed()
    for _ in range(100):
        if not connector.http.connection_count:
            break
        await asyncio.sleep(0.02)
    assert connector.http.connection_count == 0


async def test_keep_alive_reuses_one_connection(client: httpx.AsyncClient, connector: Connector):
    for _ in range(5):
        assert (await client.get("/timestamp")).status_code == 200
        assert (await client.post(ALIAS, data={"a": "1"}, headers=AUTH)).status_code == 204
    assert connector.http.connection_count == 1


# ----- record -----------------------------------------------------------------------------------


async def test_record_keeps_original_timestamps_in_order(
    client: httpx.AsyncClient, connector: Connector
):
    body = (
        "alias=otau_in&1700000000=%7B%22status%22%3A%22INIT%22%7D&1700000002=two"
        "&alias=data_in&1700000001=x%26y"
    )
    r = await client.post(RECORD, content=body, headers={**AUTH, **FORM})
    assert r.status_code == 204
    got = [(x.alias, x.timestamp, x.value, x.via) for x in connector.reports("dev1")]
    assert got == [
        ("otau_in", 1700000000, '{"status":"INIT"}', "http-record"),
        ("otau_in", 1700000002, "two", "http-record"),
        ("data_in", 1700000001, "x&y", "http-record"),
    ]


async def test_record_conflict_is_409_and_stores_nothing(
    client: httpx.AsyncClient, connector: Connector
):
    body = "alias=otau_in&1700000000=a&1700000000.5=b&1700000005=c&alias=ok&1700000000=d"
    r = await client.post(RECORD, content=body, headers={**AUTH, **FORM})
    assert r.status_code == 409
    assert parse_qsl(r.text) == [("otau_in", "1700000000,1700000000.5")]
    assert connector.reports("dev1") == []


@pytest.mark.parametrize("body", ["1700000000=a", "alias=a&soon=b", ""])
async def test_record_refuses_malformed(client: httpx.AsyncClient, body: str):
    r = await client.post(RECORD, content=body, headers={**AUTH, **FORM})
    assert r.status_code == 400


# ----- content ----------------------------------------------------------------------------------


@pytest.fixture
def blob(connector: Connector) -> bytes:
    data = os.urandom(100_000)
    connector.add_content("fw 1.bin", data, content_type="application/x-fw", description="Fw")
    connector.add_content("MANIFEST", b"{}", content_type="application/json")
    return data


async def test_content_list_and_info(client: httpx.AsyncClient, blob: bytes):
    r = await client.get("/provision/download", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines() == ["fw 1.bin", "MANIFEST"]
    r = await client.get(
        "/provision/download", params={"id": "fw 1.bin", "info": "true"}, headers=AUTH
    )
    kind, size, updated, description = r.text.split(",")
    assert (kind, int(size), description) == ("application/x-fw", len(blob), "Fw")
    assert abs(int(updated) - time.time()) < 5


async def test_download_whole_file(client: httpx.AsyncClient, blob: bytes):
    r = await client.get("/provision/download", params={"id": "fw 1.bin"}, headers=AUTH)
    assert r.status_code == 200
    assert r.content == blob
    assert r.headers["content-type"] == "application/x-fw"
    assert r.headers["accept-ranges"] == "bytes"
    assert int(r.headers["content-length"]) == len(blob)
    head = await client.head("/provision/download", params={"id": "fw 1.bin"}, headers=AUTH)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(blob)


@pytest.mark.parametrize(
    ("spec", "first", "last"),
    [
        ("0-1023", 0, 1023),
        ("1000-", 1000, 99_999),
        ("-500", 99_500, 99_999),
        ("99990-200000", 99_990, 99_999),
        ("-200000", 0, 99_999),
        ("0-0", 0, 0),
    ],
)
async def test_download_ranges(client: httpx.AsyncClient, blob: bytes, spec, first, last):
    headers = {**AUTH, "Range": f"bytes={spec}"}
    r = await client.get("/provision/download", params={"id": "fw 1.bin"}, headers=headers)
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes {first}-{last}/{len(blob)}"
    assert r.content == blob[first : last + 1]


@pytest.mark.parametrize("spec", ["100000-", "200000-300000", "-0"])
async def test_download_unsatisfiable_range_is_416(client: httpx.AsyncClient, blob, spec):
    headers = {**AUTH, "Range": f"bytes={spec}"}
    r = await client.get("/provision/download", params={"id": "fw 1.bin"}, headers=headers)
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{len(blob)}"


@pytest.mark.parametrize("spec", ["bytes=5-2", "bytes=0-1,5-6", "items=0-1", "bytes=x-"])
async def test_download_ignores_malformed_range(client: httpx.AsyncClient, blob, spec):
    headers = {**AUTH, "Range": spec}
    r = await client.get("/provision/download", params={"id": "fw 1.bin"}, headers=headers)
    assert r.status_code == 200 and r.content == blob


async def test_download_if_range_mismatch_sends_whole_file(client: httpx.AsyncClient, blob):
    params = {"id": "fw 1.bin"}
    etag = (await client.head("/provision/download", params=params, headers=AUTH)).headers["etag"]
    good = {**AUTH, "Range": "bytes=10-", "If-Range": etag}
    assert (await client.get("/provision/download", params=params, headers=good)).status_code == 206
    stale = {**AUTH, "Range": "bytes=10-", "If-Range": '"stale"'}
    r = await client.get("/provision/download", params=params, headers=stale)
    assert r.status_code == 200 and r.content == blob


async def test_download_unknown_id_is_404(client: httpx.AsyncClient, blob):
    r = await client.get("/provision/download", params={"id": "nope"}, headers=AUTH)
    assert r.status_code == 404
    r = await client.get("/provision/download", params={"id": "nope", "info": "true"}, headers=AUTH)
    assert r.status_code == 404


async def test_large_download_served_in_place(
    client: httpx.AsyncClient, connector: Connector, tmp_path: Path
):
    big = tmp_path / "big.bin"
    chunk = os.urandom(1 << 20)
    with big.open("wb") as f:
        for _ in range(32):
            f.write(chunk)
    connector.add_content("big", big, copy=False)
    digest = hashlib.sha256()
    size = 0
    async with client.stream("GET", "/provision/download", params={"id": "big"}, headers=AUTH) as r:
        assert r.status_code == 200
        async for part in r.aiter_raw():
            digest.update(part)
            size += len(part)
    assert size == 32 << 20
    assert digest.hexdigest() == hashlib.sha256(chunk * 32).hexdigest()


def test_parse_range_edge_cases():
    assert parse_range("bytes=0-", 0) is None
    assert parse_range("bytes = 2-3", 10) == (2, 4, True)
    assert parse_range("BYTES=-3", 10) == (7, 10, True)
    with pytest.raises(ValueError):
        parse_range("bytes=-", 10)


# ----- faults -----------------------------------------------------------------------------------


async def test_fault_fail_next_requests(client: httpx.AsyncClient, connector: Connector):
    connector.faults.fail_next(2, status=503, path="/onep")
    assert (await client.get("/timestamp")).status_code == 200  # other path: untouched
    statuses = [
        (await client.post(ALIAS, data={"a": "1"}, headers=AUTH)).status_code for _ in range(3)
    ]
    assert statuses == [503, 503, 204]
    assert len(connector.reports("dev1")) == 1


async def test_fault_drop_download_after_bytes(client: httpx.AsyncClient, connector, blob):
    connector.faults.drop_download_after(4096)
    got = bytearray()
    with pytest.raises(httpx.RemoteProtocolError):
        async with client.stream(
            "GET", "/provision/download", params={"id": "fw 1.bin"}, headers=AUTH
        ) as r:
            async for part in r.aiter_raw():
                got += part
    assert bytes(got) == blob[:4096]
    # The next one (a resume) is whole.
    r = await client.get(
        "/provision/download", params={"id": "fw 1.bin"}, headers={**AUTH, "Range": "bytes=4096-"}
    )
    assert r.status_code == 206 and r.content == blob[4096:]


async def test_fault_delay(client: httpx.AsyncClient, connector: Connector):
    connector.faults.delay_s = 0.3
    started = time.monotonic()
    assert (await client.get("/timestamp")).status_code == 200
    assert time.monotonic() - started >= 0.3


# ----- persistence ------------------------------------------------------------------------------


async def test_state_survives_a_restart(tmp_path: Path):
    async with Connector(data_dir=tmp_path, devices=[("fresh", None)]) as c:
        async with httpx.AsyncClient(base_url=c.http_url) as client:
            token = (await client.post("/provision/activate", data={"id": "fresh"})).text
            await client.post(ALIAS, data={"otau_in": "hello"}, headers={"X-Exosite-CIK": token})
        c.set_config_otau("fresh", {"version": "1"})
        c.add_content("f", b"abc")
    async with Connector(data_dir=tmp_path) as c:
        assert c.device("fresh").token == token
        assert [r.value for r in c.reports("fresh")] == ["hello"]
        resource = c.resource("fresh", "config_otau")
        assert resource is not None and resource.value == '{"version":"1"}' and not resource.acked
        async with httpx.AsyncClient(base_url=c.http_url) as client:
            r = await client.get(
                "/provision/download", params={"id": "f"}, headers={"X-Exosite-CIK": token}
            )
            assert r.content == b"abc"
    assert oct((tmp_path / "state" / "devices.json").stat().st_mode & 0o777) == "0o600"
