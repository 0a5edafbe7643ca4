"""The HTTP device channel over real sockets on 127.0.0.1, against the local connector.

A tiny scripted server of this module covers what the connector does not do on purpose
(``Last-Modified`` as Unix seconds, a 409 from ``/onep:v1/stack/record``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import pytest
from wait_helpers import eventually

from otatui.connector.server import Connector
from otatui.murano.backoff import Backoff
from otatui.murano.channel import (
    AuthError,
    Channel,
    ChannelError,
    ChannelState,
    LinkState,
    RecordConflict,
    ResourceValue,
    TimedValue,
)
from otatui.murano.content import content_info, list_content
from otatui.murano.device_api import device_api_client
from otatui.murano.http import HttpChannel
from otatui.murano.provisioning import AlreadyProvisioned, NotWhitelisted, activate, timestamp

TOKEN = "Ed9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK9y"
BAD_TOKEN = "0000000000000000000000000000000000000000"
IDENTITY = "pump-7"
# Characters a naive (un-encoded) echo would break: & + % = space, and non-ASCII.
MANIFEST = (
    '{"version":"1.2.4","name":"fw & tools + 100% = ok","type":"FILE",'
    '"payload":["fw_1.2.4.bin#sha256=ab","https://example.com/a b?x=1&y=2"],"note":"é"}'
)
POLL_MS = 300


@dataclass
class Seen:
    """One request as the connector received it, and its answer."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    status: int = 0


@dataclass
class Recorder:
    requests: list[Seen] = field(default_factory=list)

    def polls(self) -> list[Seen]:
        return [r for r in self.requests if r.method == "GET" and "request-timeout" in r.headers]

    def statuses(self) -> list[int]:
        return [r.status for r in self.polls()]


@pytest.fixture
async def connector() -> AsyncIterator[tuple[Connector, Recorder]]:
    async with Connector(devices=[(IDENTITY, TOKEN)]) as conn:
        recorder = Recorder()
        inner = conn.http.handler

        async def counting(request, exchange):  # type: ignore[no-untyped-def]
            seen = Seen(request.method, request.path, request.query, dict(request.headers))
            recorder.requests.append(seen)
            response = await inner(request, exchange)
            seen.status = response.status
            return response

        conn.http.handler = counting
        yield conn, recorder


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with device_api_client() as c:
        yield c


def make_channel(
    client: httpx.AsyncClient, url: str, token: str | None = TOKEN, **kwargs: object
) -> tuple[HttpChannel, list[ChannelState]]:
    states: list[ChannelState] = []
    options: dict[str, object] = {
        "request_timeout_ms": POLL_MS,
        "backoff": Backoff(base=0.02, cap=0.1),
        "read_margin_s": 2.0,
        "repoll_delay_s": 0.05,
        "on_state": states.append,
    }
    options.update(kwargs)
    channel = HttpChannel(client, url, token, **options)  # type: ignore[arg-type]
    return channel, states


@contextlib.asynccontextmanager
async def running(channel: HttpChannel) -> AsyncIterator[AsyncIterator[ResourceValue]]:
    await channel.start()
    values = channel.values()
    try:
        yield values
    finally:
        await channel.close()


async def next_value(values: AsyncIterator[ResourceValue], within: float = 3.0) -> ResourceValue:
    return await asyncio.wait_for(anext(values), within)


async def wait_for(predicate: Callable[[], bool], within: float = 3.0) -> None:
    await eventually(predicate, within, every=0.01)  # states can be short-lived: poll often


# -- provisioning ------------------------------------------------------------------------------


async def test_activate_gives_a_token_then_409_and_404_have_clear_messages(
    connector: tuple[Connector, Recorder], client: httpx.AsyncClient
) -> None:
    conn, _ = connector
    conn.add_device("new-1")
    token = await activate(client, conn.http_url, "new-1")
    assert len(token) == 40
    assert conn.device("new-1").token == token
    channel, _ = make_channel(client, conn.http_url, token, watch=())
    await channel.write("otau_in", "hello")  # the token works
    assert conn.reports("new-1", "otau_in")[-1].value == "hello"

    with pytest.raises(AlreadyProvisioned) as again:
        await activate(client, conn.http_url, "new-1")
    assert str(again.value) == (
        "identity new-1 is already provisioned; reset it in Murano or give its token"
    )
    assert token not in str(again.value)
    with pytest.raises(NotWhitelisted) as unknown:
        await activate(client, conn.http_url, "stranger")
    assert str(unknown.value) == "identity stranger is not whitelisted on the connector"

    conn.reset_device("new-1")  # Murano's reset: activation works again, with a new token
    assert await activate(client, conn.http_url, "new-1") != token


async def test_timestamp_is_the_connector_clock(
    connector: tuple[Connector, Recorder], client: httpx.AsyncClient
) -> None:
    conn, _ = connector
    assert abs(await timestamp(client, conn.http_url) - time.time()) < 2


async def test_unreachable_connector_is_a_channel_error(client: httpx.AsyncClient) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ChannelError, match="cannot reach the connector"):
        await activate(client, url, "x")


# -- long poll ---------------------------------------------------------------------------------


async def test_long_poll_loops_on_304_then_wakes_on_a_set_value(
    connector: tuple[Connector, Recorder], client: httpx.AsyncClient
) -> None:
    conn, rec = connector
    channel, states = make_channel(client, conn.http_url)
    assert isinstance(channel, Channel)
    async with running(channel) as values:
        await wait_for(lambda: rec.statuses().count(304) >= 2)
        assert channel.state.state == LinkState.CONNECTED
        first = rec.polls()[0]
        assert first.query == "config_otau"
        assert first.headers["request-timeout"] == str(POLL_MS)
        assert first.headers["if-modified-since"] == "0"
        assert first.headers["x-exosite-cik"] == TOKEN

        resource = conn.set_config_otau(IDENTITY, MANIFEST)
        value = await next_value(values)
    assert value == ResourceValue("config_otau", MANIFEST, float(int(resource.set_at)), "http")
    assert [s.state for s in states][:2] == [LinkState.CONNECTING, LinkState.CONNECTED]
    assert states[-1].state == LinkState.STOPPED


async def test_a_held_long_poll_wakes_up_on_a_set_value(
    connector: tuple[Connector, Recorder], client: httpx.AsyncClient
) -> None:
    conn, rec = connector
    channel, _ = make_channel(client, conn.http_url, request_timeout_ms=20_000, held_after_s=0.05)
    async with running(channel) as values:
        await wait_for(lambda: channel.state.state == LinkState.CONNECTED)
        t0 = time.monotonic()
        conn.set_config_otau(IDENTITY, MANIFEST)
        assert (await next_value(values)).raw == MANIFEST
        assert time.monotonic() - t0 < 5  # woken by the set, long before the 20 s timeout
        assert rec.statuses()[0] == 200  # the very first poll, held, carried the value


async def test_ack_is_byte_identical_and_the_value_is_not_delivered_again(
    connector: tuple[Connector, Recorder], client: httpx.AsyncClient
) -> None:
    conn, rec = connector
    channel, _ = make_channel(client, conn.http_url)
    async with running(channel) as values:
        conn.set_config_otau(IDENTITY, MANIFEST)
        value = await next_value(values)
        await channel.acknowledge(value)
        report = conn.reports(IDENTITY, "config_otau")[-1]
        assert report.value == MANIFEST and report.ack
        assert conn.resource(IDENTITY, "config_otau").acked  # type: ignore[union-attr]
        post = [r for r in rec.requests if r.method == "POST"][-1]
        assert post.headers["content-type"].startswith("application/x-www-form-urlencoded")

        acked_at = len(rec.polls())
        with pytest.raises(TimeoutError):
            await next_value(values, within=3 * POLL_MS / 1000)
        later = [r for r in rec.polls()[acked_at:] if r.status]  # answered ones
        assert later and all(r.status == 304 for r in later)
        # The poll asks "modified since" the value's Last-Modified, echoed verbatim.
        assert later[-1].headers["if-modified-since"].endswith(" GMT")


async def test_redelivery_before_the_ack_is_yielded_once_without_a_busy_loop(
    connector: tuple[Connector, Recorder], client: httpx.AsyncClient
) -> None:
    conn, rec = connector
    channel, _ = make_channel(client, conn.http_url, repoll_delay_s=0.1)
    async with running(channel) as values:
        conn.set_config_otau(IDENTITY, MANIFEST)
        value = await next_value(values)
        start = len(rec.requests)
        await asyncio.sleep(0.5)  # the connector re-delivers while unacknowledged
        redelivered = [r for r in rec.requests[start:] if r.status == 200]
        assert 2 <= len(redelivered) <= 7  # paced by repoll_delay_s, not a hot loop
        with pytest.raises(TimeoutError):
            await next_value(values, within=0.05)
        await channel.acknowledge(value)
        with pytest.raises(TimeoutError):
            await next_value(values, within=2 * POLL_MS / 1000)


async def test_a_new_value_after_the_ack_is_delivered(
    connector: tuple[Connector, Recorder], client: httpx.AsyncClient
) -> None:
    conn, _ = connector
    channel, _ = make_channel(client, conn.http_url)
    async with running(channel) as values:
        conn.set_config_otau(IDENTITY, MANIFEST)
        await channel.acknowledge(await next_value(values))
        second = MANIFEST.replace("1.2.4", "1.2.5")
        conn.set_config_otau(IDENTITY, second)
        assert (await next_value(values)).raw == second


async def test_the_same_value_set_again_within_the_second_after_the_ack_is_delivered(
    connector: tuple[Connector, Recorder], client: httpx.AsyncClient
) -> None:
    conn, _ = connector
    conn.state.clock = lambda: 1_700_000_000.25  # both sets get the same Last-Modified
    channel, _ = make_channel(client, conn.http_url)
    async with running(channel) as values:
        conn.set_config_otau(IDENTITY, MANIFEST)
        first = await next_value(values)
        await channel.acknowledge(first)
        await asyncio.sleep(0.1)
        conn.set_config_otau(IDENTITY, MANIFEST)  # unacknowledged again at the connector
        again = await next_value(values)
        await channel.acknowledge(again)
        assert again == first == ResourceValue("config_otau", MANIFEST, 1_700_000_000.0, "http")
        with pytest.raises(TimeoutError):
            await next_value(values, within=2 * POLL_MS / 1000)


async def test_value_pending_before_start_is_delivered_at_once(
    connector: tuple[Connector, Recorder], client: httpx.AsyncClient
) -> None:
    conn, _ = connector
    conn.set_config_otau(IDENTITY, MANIFEST)
    channel, _ = make_channel(client, conn.http_url, request_timeout_ms=5_000)
    async with running(channel) as values:
        assert (await next_value(values, within=1.0)).raw == MANIFEST


async def test_401_is_an_auth_error_without_a_retry_storm(
    connector: tuple[Connector, Recorder], client: httpx.AsyncClient
) -> None:
    conn, rec = connector
    channel, states = make_channel(client, conn.http_url, BAD_TOKEN)
    async with running(channel) as values:
        with pytest.raises(AuthError) as caught:
            await next_value(values)
        assert channel.state.state == LinkState.AUTH_FAILED
        await asyncio.sleep(0.3)
        assert len(rec.requests) == 1  # one poll, refused; nothing after
        with pytest.raises(AuthError):
            await channel.write("otau_in", "x")
        assert len(rec.requests) == 1  # refused without asking again
    assert BAD_TOKEN not in str(caught.value)
    assert all(BAD_TOKEN not in s.reason for s in states)
    assert LinkState.BACKOFF not in [s.state for s in states]


async def test_token_revoked_while_polling_stops_the_channel(
    connector: tuple[Connector, Recorder], client: httpx.AsyncClient
) -> None:
    conn, rec = connector
    channel, _ = make_channel(client, conn.http_url)
    async with running(channel) as values:
        await wait_for(lambda: 304 in rec.statuses())
        conn.reset_device(IDENTITY)
        with pytest.raises(AuthError):
            await next_value(values)
        count = len(rec.requests)
        await asyncio.sleep(0.2)
        assert len(rec.requests) == count
        assert rec.requests[-1].status == 401


async def test_write_401_is_an_auth_error(
    connector: tuple[Connector, Recorder], client: httpx.AsyncClient
) -> None:
    conn, _ = connector
    channel, states = make_channel(client, conn.http_url, BAD_TOKEN, watch=())
    with pytest.raises(AuthError):
        await channel.write("otau_in", "x")
    assert states[-1].state == LinkState.AUTH_FAILED


async def test_5xx_burst_backs_off_with_state_events_then_recovers(
    connector: tuple[Connector, Recorder], client: httpx.AsyncClient
) -> None:
    conn, rec = connector
    conn.faults.fail_next(4, status=503, path="/onep:v1/stack/alias")
    channel, states = make_channel(client, conn.http_url)
    async with running(channel) as values:
        await wait_for(lambda: channel.state.state == LinkState.CONNECTED)
        conn.set_config_otau(IDENTITY, MANIFEST)
        assert (await next_value(values)).raw == MANIFEST
    backoffs = [s for s in states[:6] if s.state == LinkState.BACKOFF]
    assert [s.attempt for s in backoffs] == [1, 2, 3, 4]
    assert all("HTTP 503" in s.reason and s.retry_at is not None for s in backoffs)
    assert [s.state for s in states[:2]] == [LinkState.CONNECTING, LinkState.BACKOFF]
    assert states[5].state == LinkState.CONNECTED
    assert rec.statuses()[:4] == [503] * 4
    assert rec.statuses()[4] in (200, 304)


async def test_network_errors_back_off_within_the_cap(client: httpx.AsyncClient) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    channel, states = make_channel(client, url, backoff=Backoff(base=0.05, cap=0.1))
    async with running(channel):
        await asyncio.sleep(0.6)
    backoffs = [s for s in states if s.state == LinkState.BACKOFF]
    # Full jitter within [0, 0.1] s: a few attempts, not hundreds.
    assert 2 <= len(backoffs) <= 60
    assert backoffs[-1].attempt == len(backoffs)
    assert "cannot" in backoffs[0].reason or "Connect" in backoffs[0].reason
    now = time.time()
    assert all(s.retry_at is not None and s.retry_at <= now + 1 for s in backoffs)


async def test_a_connector_that_does_not_answer_times_out_into_backoff(
    client: httpx.AsyncClient,
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        channel, states = make_channel(
            client, f"http://127.0.0.1:{port}", request_timeout_ms=100, read_margin_s=0.2
        )
        async with running(channel):
            await wait_for(lambda: channel.state.state == LinkState.BACKOFF, within=2)
        assert "no answer in time" in channel_states_reason(states)
    finally:
        server.close()
        await server.wait_closed()


def channel_states_reason(states: list[ChannelState]) -> str:
    return " | ".join(s.reason for s in states if s.state == LinkState.BACKOFF)


async def test_404_on_an_undefined_alias_is_a_clear_backoff_state(
    connector: tuple[Connector, Recorder], client: httpx.AsyncClient
) -> None:
    conn, _ = connector
    conn.faults.fail_next(1, status=404, path="/onep:v1/stack/alias")
    channel, states = make_channel(client, conn.http_url)
    async with running(channel):
        await wait_for(lambda: channel.state.state == LinkState.CONNECTED)
    assert states[1].state == LinkState.BACKOFF
    assert states[1].reason == "config_otau is not defined on the connector (HTTP 404)"


async def test_close_ends_the_values_iteration(
    connector: tuple[Connector, Recorder], client: httpx.AsyncClient
) -> None:
    conn, _ = connector
    channel, _ = make_channel(client, conn.http_url)
    await channel.start()
    values = channel.values()
    waiter = asyncio.ensure_future(anext(values))
    await asyncio.sleep(0.05)
    await channel.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiter, 1)
    assert channel.state.state == LinkState.STOPPED


# -- several aliases (monitors) ----------------------------------------------------------------


@pytest.mark.parametrize("combine", [False, True])
async def test_watching_several_aliases(
    connector: tuple[Connector, Recorder], client: httpx.AsyncClient, combine: bool
) -> None:
    conn, rec = connector
    channel, _ = make_channel(
        client, conn.http_url, watch=("config_otau", "config_x"), combine_watch=combine
    )
    async with running(channel) as values:
        conn.set_config_otau(IDENTITY, MANIFEST)
        conn.set_value(IDENTITY, "config_x", "a=b&c")
        got = {(await next_value(values)).alias for _ in range(2)} | set()
        assert got == {"config_otau", "config_x"}
    queries = {r.query for r in rec.polls()}
    assert queries == ({"config_otau&config_x"} if combine else {"config_otau", "config_x"})


async def test_read_current_values(
    connector: tuple[Connector, Recorder], client: httpx.AsyncClient
) -> None:
    conn, _ = connector
    channel, _ = make_channel(client, conn.http_url, watch=())
    assert await channel.read(["config_otau"]) == {}
    conn.set_config_otau(IDENTITY, MANIFEST)
    await channel.write("otau_in", '{"version":"1.0.0","status":"INSTALLED_VERSION"}')
    assert await channel.read(["config_otau", "otau_in", "nothing"]) == {
        "config_otau": MANIFEST,
        "otau_in": '{"version":"1.0.0","status":"INSTALLED_VERSION"}',
    }


# -- writes and records ------------------------------------------------------------------------


async def test_write_is_form_encoded_and_confirmed(
    connector: tuple[Connector, Recorder], client: httpx.AsyncClient
) -> None:
    conn, _ = connector
    channel, _ = make_channel(client, conn.http_url, watch=())
    report = '{"version":"1.2.4","status":"DOWNLOAD_STEP","message":"50% & rising + more"}'
    await channel.write("otau_in", report)
    got = conn.reports(IDENTITY, "otau_in")[-1]
    assert (got.value, got.via) == (report, "http")


async def test_record_batch_keeps_original_timestamps_and_order(
    connector: tuple[Connector, Recorder], client: httpx.AsyncClient
) -> None:
    conn, rec = connector
    channel, _ = make_channel(client, conn.http_url, watch=())
    base = 1_700_000_000.0
    records = [
        TimedValue("otau_in", '{"status":"INIT"}', base + 0.1),
        TimedValue("otau_in", '{"status":"TEST"}', base + 0.6),  # same second
        TimedValue("otau_in", '{"status":"TEST_SUCCESS"}', base + 2.3),
        TimedValue("other", "x&y", base + 2.3),
    ]
    await channel.write_batch(records)
    got = [(r.alias, r.value, r.timestamp, r.via) for r in conn.reports(IDENTITY)]
    assert got == [
        ("otau_in", '{"status":"INIT"}', base, "http-record"),
        ("otau_in", '{"status":"TEST"}', base, "http-record"),
        ("otau_in", '{"status":"TEST_SUCCESS"}', base + 2, "http-record"),
        ("other", "x&y", base + 2, "http-record"),
    ]
    assert len([r for r in rec.requests if r.path == "/onep:v1/stack/record"]) == 2


# -- content -----------------------------------------------------------------------------------


async def test_content_list_and_info(
    connector: tuple[Connector, Recorder], client: httpx.AsyncClient
) -> None:
    conn, _ = connector
    conn.add_content("fw 1.2.4.bin", b"\x00" * 1234, description="")
    conn.add_content("MANIFEST", b"{}", content_type="application/json", description="a, b")
    assert sorted(await list_content(client, conn.http_url, TOKEN)) == ["MANIFEST", "fw 1.2.4.bin"]
    info = await content_info(client, conn.http_url, TOKEN, "fw 1.2.4.bin")
    assert (info.content_type, info.size, info.description) == (
        "application/octet-stream",
        1234,
        "",
    )
    assert abs(info.updated - time.time()) < 5
    other = await content_info(client, conn.http_url, TOKEN, "MANIFEST")
    assert (other.content_type, other.size, other.description) == ("application/json", 2, "a, b")
    with pytest.raises(ChannelError, match="content nope is not on the connector"):
        await content_info(client, conn.http_url, TOKEN, "nope")
    with pytest.raises(AuthError):
        await list_content(client, conn.http_url, BAD_TOKEN)


# -- a scripted server for what the connector does not do --------------------------------------


Answer = tuple[int, dict[str, str], bytes]


class ScriptedServer:
    """Answers each request with the next scripted answer (then 304s), recording the requests."""

    def __init__(self, answers: list[Answer], hold_s: float = 0.1) -> None:
        self.answers = list(answers)
        self.hold_s = hold_s
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 1)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append((lines[0], headers, body))
            if self.answers:
                status, extra, payload = self.answers.pop(0)
            else:
                await asyncio.sleep(self.hold_s)
                status, extra, payload = 304, {}, b""
            out = [f"HTTP/1.1 {status} X", f"Content-Length: {len(payload)}", "Connection: close"]
            out += [f"{k}: {v}" for k, v in extra.items()]
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + payload)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def test_last_modified_as_unix_seconds_is_fed_back_and_dedupes(
    client: httpx.AsyncClient,
) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    body = b"config_otau=%7B%22version%22%3A%222.0%22%2C%22n%22%3A%22a+b%22%7D"
    answers: list[Answer] = [
        (200, {**form, "Last-Modified": "1408088412"}, body),
        (200, {**form, "Last-Modified": "1408088412"}, body),  # re-delivered: not yielded
        (200, {**form, "Last-Modified": "1408088413"}, body),  # set again later: yielded
    ]
    server = ScriptedServer(answers)
    async with server as url:
        channel, _ = make_channel(client, url, repoll_delay_s=0.01)
        async with running(channel) as values:
            first = await next_value(values)
            second = await next_value(values)
    assert server.answers == [] and len(server.requests) == 3
    assert first == ResourceValue(
        "config_otau", '{"version":"2.0","n":"a b"}', 1408088412.0, "http"
    )
    assert second.timestamp == 1408088413.0


async def test_if_modified_since_echoes_unix_seconds(client: httpx.AsyncClient) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    server = ScriptedServer([(200, {**form, "Last-Modified": "1408088412"}, b"config_otau=x")])
    async with server as url:
        channel, _ = make_channel(client, url)
        async with running(channel) as values:
            await next_value(values)
            await wait_for(lambda: len(server.requests) >= 2)
    assert server.requests[0][1]["if-modified-since"] == "0"
    assert server.requests[1][1]["if-modified-since"] == "1408088412"


async def test_record_conflict_is_reported(client: httpx.AsyncClient) -> None:
    server = ScriptedServer([(409, {}, b"otau_in=1700000000&otau_in=1700000000")])
    async with server as url:
        channel, _ = make_channel(client, url, watch=())
        with pytest.raises(RecordConflict) as caught:
            await channel.write_batch([TimedValue("otau_in", "a", 1_700_000_000.0)])
    assert caught.value.conflicts == {"otau_in": [1_700_000_000.0, 1_700_000_000.0]}
    line, headers, body = server.requests[0]
    assert line.startswith("POST /onep:v1/stack/record ")
    assert body == b"alias=otau_in&1700000000=a"
    assert headers["x-exosite-cik"] == TOKEN


async def test_activate_refuses_a_200_without_a_token(client: httpx.AsyncClient) -> None:
    async with ScriptedServer([(200, {}, b"OK")]) as url:
        with pytest.raises(ChannelError, match="without a 40-character token"):
            await activate(client, url, "x")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_the_token_never_appears_in_logs_or_errors(
    connector: tuple[Connector, Recorder],
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn, _ = connector
    caplog.set_level(logging.DEBUG)
    conn.faults.fail_next(2, status=500, path="/onep:v1/stack/alias")
    channel, states = make_channel(client, conn.http_url)
    errors: list[str] = []
    async with running(channel) as values:
        conn.set_config_otau(IDENTITY, MANIFEST)
        await channel.acknowledge(await next_value(values))
        conn.reset_device(IDENTITY)  # the token is now refused
        for call in (channel.write("otau_in", "x"), anext(values)):
            try:
                await asyncio.wait_for(call, 3)
            except ChannelError as exc:
                errors.append(f"{exc!s} {exc!r}")
    assert len(errors) == 2
    bad, _ = make_channel(client, f"http://127.0.0.1:{free_port()}", watch=())
    with pytest.raises(ChannelError) as unreachable:
        await bad.write("otau_in", "x")
    errors.append(str(unreachable.value))
    texts = [caplog.text, *errors, *(s.reason for s in states), repr(channel)]
    assert caplog.text  # httpx and the connector did log
    assert all(TOKEN not in text for text in texts)


async def test_a_held_poll_counts_as_connected_before_its_timeout(
    connector: tuple[Connector, Recorder], client: httpx.AsyncClient
) -> None:
    conn, rec = connector
    channel, states = make_channel(
        client, conn.http_url, request_timeout_ms=5_000, held_after_s=0.1
    )
    async with running(channel):
        await wait_for(lambda: channel.state.state == LinkState.CONNECTED, within=1.0)
        assert [r.status for r in rec.polls()] == [0]  # the first poll is still held
    assert [s.state for s in states] == [
        LinkState.CONNECTING,
        LinkState.CONNECTED,
        LinkState.STOPPED,
    ]
