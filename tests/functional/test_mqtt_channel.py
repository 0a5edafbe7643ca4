"""MqttChannel over real sockets on 127.0.0.1 against the local connector's MQTT endpoint."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from connector_helpers import make_cert
from mqtt_helpers import CertServer, Relay, StateLog, make_client_cert, wait_state

from otatui.connector import Connector
from otatui.murano.backoff import Backoff
from otatui.murano.channel import (
    AuthError,
    ChannelError,
    ChannelState,
    LinkState,
    NotConnected,
    TimedValue,
)
from otatui.murano.mqtt import MqttChannel, provision_mqtt

TOKEN = "Ed9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK9y"
WRONG = "wrongwrongwrongwrongwrongwrongwrongwron0"
FAST = Backoff(base=0.05, cap=0.2)
# Unusual spacing, key order, escapes and non-ASCII: the echo must keep every byte.
MANIFEST = (
    '{ "version":"2.1.0",  "name":"fw \\u00e9 ü", "type":"FILE",'
    '"payload":"fw-2.1.0.bin", "description":"a&b+c%20" }'
)


@pytest.fixture
async def connector() -> AsyncIterator[Connector]:
    async with Connector(http_port=None, devices=[("dev1", TOKEN), ("fresh", None)]) as c:
        yield c


@pytest.fixture
async def channel(connector: Connector) -> AsyncIterator[MqttChannel]:
    ch = MqttChannel(connector.mqtt_url, TOKEN, insecure=True, backoff=FAST, keepalive=10)
    await ch.start()
    await wait_state(ch, LinkState.CONNECTED)
    yield ch
    await ch.close()


async def test_connects_with_token_and_receives_a_pushed_manifest(
    channel: MqttChannel, connector: Connector
) -> None:
    assert connector.is_connected("dev1")
    resource = connector.set_config_otau("dev1", MANIFEST)
    value = await asyncio.wait_for(anext(channel.values()), 5)
    assert (value.alias, value.raw, value.source) == ("config_otau", MANIFEST, "mqtt")
    assert value.timestamp == pytest.approx(resource.set_at, abs=1e-6)


async def test_acknowledgement_is_the_identical_bytes(
    channel: MqttChannel, connector: Connector
) -> None:
    connector.set_config_otau("dev1", MANIFEST)
    value = await asyncio.wait_for(anext(channel.values()), 5)
    await channel.acknowledge(value)
    # acknowledge() returned on PUBACK, and the connector stores before it PUBACKs
    resource = connector.resource("dev1", "config_otau")
    assert resource is not None and resource.acked
    (report,) = connector.reports("dev1", "config_otau")
    assert report.value == MANIFEST and report.ack and report.via == "mqtt"


async def test_write_completes_on_puback(channel: MqttChannel, connector: Connector) -> None:
    for i in range(20):
        await channel.write("otau_in", json.dumps({"version": "2.1.0", "status": f"S{i}"}))
        assert len(connector.reports("dev1", "otau_in")) == i + 1  # stored before we returned
    sent = await asyncio.gather(*(channel.write("n", str(i)) for i in range(100)))
    assert len(sent) == 100
    assert [r.value for r in connector.reports("dev1", "n")] == [str(i) for i in range(100)]


async def test_batch_keeps_the_original_timestamps(
    channel: MqttChannel, connector: Connector
) -> None:
    t0 = time.time() - 3600
    records = [
        TimedValue("otau_in", '{"version":"2.1.0","status":"INIT"}', t0),
        TimedValue("otau_in", '{"version":"2.1.0","status":"TEST"}', t0 + 0.25),
        TimedValue("other", "1", t0 + 0.25),
        TimedValue("otau_in", '{"version":"2.1.0","status":"DOWNLOAD"}', t0 + 2.000001),
    ]
    await channel.write_batch(records)
    got = connector.reports("dev1", "otau_in")
    expected = [records[0].value, records[1].value, records[3].value]
    assert [(r.value, r.via) for r in got] == [(v, "mqtt-batch") for v in expected]
    assert [r.timestamp for r in got] == pytest.approx([t0, t0 + 0.25, t0 + 2.000001], abs=1e-6)
    assert connector.reports("dev1", "other")[0].timestamp == pytest.approx(t0 + 0.25, abs=1e-6)
    await channel.write_batch([])  # nothing to send: returns at once


async def test_bad_token_is_final_after_one_attempt(connector: Connector) -> None:
    states: list[ChannelState] = []
    async with Relay(connector.ports["mqtt"]) as relay:
        ch = MqttChannel(
            f"mqtt://127.0.0.1:{relay.port}", WRONG, insecure=True, backoff=FAST,
            on_state=states.append,
        )  # fmt: skip
        await ch.start()
        await wait_state(ch, LinkState.AUTH_FAILED)
        await asyncio.sleep(0.6)  # several FAST backoffs: a retrying channel would be back
        assert relay.accepted == 1
        assert ch.connects == 1
        assert [s.state for s in states] == [LinkState.CONNECTING, LinkState.AUTH_FAILED]
        assert "CONNACK 4" in states[-1].reason and WRONG not in states[-1].reason
        with pytest.raises(AuthError, match="refused the device token"):
            async for _ in ch.values():
                pass
        with pytest.raises(NotConnected):
            await ch.write("otau_in", "x")
        await ch.close()
        assert ch.state.state == LinkState.AUTH_FAILED  # closing does not hide why it stopped


async def test_kicked_connection_reconnects_and_replay_is_not_yielded_twice(
    connector: Connector,
) -> None:
    log = StateLog()
    ch = MqttChannel(connector.mqtt_url, TOKEN, insecure=True, backoff=FAST, on_state=log)
    await ch.start()
    try:
        await log.reach(LinkState.CONNECTED)
        connector.set_config_otau("dev1", MANIFEST)
        values = ch.values()
        first = await asyncio.wait_for(anext(values), 5)
        assert first.raw == MANIFEST
        accepted = connector.mqtt.connects

        # Not yet acknowledged (the update is "being processed"): the connector replays it.
        mark = len(log.states)
        assert connector.kick("dev1") == 1
        lost = await log.reach(LinkState.BACKOFF, after=mark)
        await log.reach(LinkState.CONNECTED, after=lost)
        assert connector.mqtt.connects == accepted + 1
        backoff = log.states[lost]
        assert backoff.reason == "connection lost" and backoff.attempt == 1
        assert backoff.retry_at is not None and backoff.retry_at <= time.time() + FAST.cap

        # The replay comes first after CONNACK; the next value yielded is the new one.
        newer = MANIFEST.replace("2.1.0", "2.2.0")
        await asyncio.sleep(0.1)
        connector.set_config_otau("dev1", newer)
        second = await asyncio.wait_for(anext(values), 5)
        assert second.raw == newer
        await ch.acknowledge(second)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(values), 0.3)
    finally:
        await ch.close()
    assert log.states[-1].state == LinkState.STOPPED


async def test_write_in_flight_when_the_connection_drops_fails(connector: Connector) -> None:
    async with Relay(connector.ports["mqtt"]) as relay:
        ch = MqttChannel(f"mqtt://127.0.0.1:{relay.port}", TOKEN, insecure=True, backoff=FAST)
        await ch.start()
        try:
            await wait_state(ch, LinkState.CONNECTED)
            relay.hold_upstream = True  # the PUBLISH never reaches the connector
            write = asyncio.create_task(ch.write("otau_in", "lost"))
            await asyncio.sleep(0.1)
            assert not write.done()
            relay.cut()
            with pytest.raises(ChannelError, match="not confirmed") as info:
                await write
            assert not isinstance(info.value, NotConnected)
            relay.hold_upstream = False
            await wait_state(ch, LinkState.CONNECTED)
            await ch.write("otau_in", "again")  # the caller's outbox retries
            assert [r.value for r in connector.reports("dev1", "otau_in")] == ["again"]
        finally:
            await ch.close()


async def test_refused_tcp_backs_off_and_recovers() -> None:
    states: list[ChannelState] = []
    third_failure = asyncio.Event()

    def on_state(state: ChannelState) -> None:
        states.append(state)
        if state.state == LinkState.BACKOFF and state.attempt >= 3:
            third_failure.set()

    async with Connector(http_port=None, devices=[("dev1", TOKEN)]) as probe:
        port = probe.ports["mqtt"]
    # Nothing listens on `port` now.
    ch = MqttChannel(
        f"mqtt://127.0.0.1:{port}", TOKEN, insecure=True, backoff=FAST, on_state=on_state
    )
    await ch.start()
    try:
        await wait_state(ch, LinkState.BACKOFF)
        assert "cannot connect" in ch.state.reason and TOKEN not in ch.state.reason
        await asyncio.wait_for(third_failure.wait(), 5)
        with pytest.raises(NotConnected, match="not connected"):
            await ch.write("otau_in", "x")  # at once: the caller's outbox keeps it
        async with Connector(http_port=None, mqtt_port=port, devices=[("dev1", TOKEN)]):
            await wait_state(ch, LinkState.CONNECTED, within=5)
        attempts = [s.attempt for s in states if s.state == LinkState.BACKOFF]
        assert attempts[:3] == [1, 2, 3]
    finally:
        await ch.close()


async def test_two_hundred_channels_in_one_loop_without_threads(connector: Connector) -> None:
    n = 200
    tokens = {f"d{i:03}": f"{i:03}".ljust(40, "t") for i in range(n)}
    for identity, token in tokens.items():
        connector.add_device(identity, token)
    threads_before = threading.active_count()
    channels = {
        identity: MqttChannel(connector.mqtt_url, token, insecure=True, backoff=FAST)
        for identity, token in tokens.items()
    }
    try:
        for ch in channels.values():
            await ch.start()
        for ch in channels.values():
            await wait_state(ch, LinkState.CONNECTED, within=20)
        assert threading.active_count() == threads_before

        async def one(identity: str, ch: MqttChannel) -> None:
            connector.set_config_otau(identity, MANIFEST.replace("fw", identity))
            value = await asyncio.wait_for(anext(ch.values()), 10)
            assert value.raw == MANIFEST.replace("fw", identity)
            await ch.acknowledge(value)
            await ch.write("otau_in", '{"version":"2.1.0","status":"INSTALLED_VERSION"}')

        await asyncio.gather(*(one(i, ch) for i, ch in channels.items()))
        assert all(connector.resource(i, "config_otau").acked for i in channels)  # type: ignore[union-attr]
        assert threading.active_count() == threads_before
    finally:
        await asyncio.gather(*(ch.close() for ch in channels.values()))
    assert all(ch.state.state == LinkState.STOPPED for ch in channels.values())


async def test_provisioning_over_mqtt(connector: Connector) -> None:
    token = await provision_mqtt(connector.mqtt_url, "fresh", insecure=True, timeout=5)
    assert token == connector.device("fresh").token and len(token) == 40
    ch = MqttChannel(connector.mqtt_url, token, insecure=True)
    await ch.start()
    await wait_state(ch, LinkState.CONNECTED)
    await ch.close()
    # Murano does not answer for an identity provisioned already: the wait is bounded.
    started = time.monotonic()
    with pytest.raises(ChannelError) as info:
        await provision_mqtt(connector.mqtt_url, "fresh", insecure=True, timeout=0.5)
    assert str(info.value) == (
        "no reply to $provision/fresh within 0.5 s (already provisioned or not whitelisted?)"
    )
    assert time.monotonic() - started < 2
    with pytest.raises(ChannelError, match="plain"):
        await provision_mqtt(connector.mqtt_url, "fresh")


async def test_tls_with_a_test_ca(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    async with Connector(
        http_port=None, mqtt_port=None, mqtts_port=0, tls_cert=cert, tls_key=key,
        devices=[("dev1", TOKEN), ("fresh", None)],
    ) as c:  # fmt: skip
        port = c.ports["mqtts"]
        for host in ("127.0.0.1", "localhost"):  # IP SAN; DNS name with SNI
            ch = MqttChannel(f"mqtts://{host}:{port}", TOKEN, ca_file=str(cert), backoff=FAST)
            await ch.start()
            await wait_state(ch, LinkState.CONNECTED)
            c.set_config_otau("dev1", MANIFEST)
            value = await asyncio.wait_for(anext(ch.values()), 5)
            await ch.acknowledge(value)
            await ch.write("otau_in", "x" * 300_000)  # several TLS records
            await ch.close()
        assert c.resource("dev1", "config_otau").acked  # type: ignore[union-attr]

        # A host name is looked up once for channels connecting together (at most one
        # executor thread, whatever the number of devices).
        threads_before = threading.active_count()
        for i in range(30):
            c.add_device(f"t{i}", f"{i:02}".ljust(40, "x"))
        many = [
            MqttChannel(f"mqtts://localhost:{port}", f"{i:02}".ljust(40, "x"), ca_file=str(cert))
            for i in range(30)
        ]
        for ch in many:
            await ch.start()
        for ch in many:
            await wait_state(ch, LinkState.CONNECTED)
        assert threading.active_count() <= threads_before + 1
        await asyncio.gather(*(ch.close() for ch in many))

        # Without the CA the server is not trusted: back off with the reason, never connect.
        untrusted = MqttChannel(f"mqtts://127.0.0.1:{port}", TOKEN, backoff=FAST)
        await untrusted.start()
        await wait_state(untrusted, LinkState.BACKOFF)
        assert "not trusted" in untrusted.state.reason
        await untrusted.close()

        token = await provision_mqtt(
            f"mqtts://localhost:{port}", "fresh", ca_file=str(cert), timeout=5
        )
        assert token == c.device("fresh").token


async def test_certificate_mode_sends_the_client_certificate_and_no_credentials(
    tmp_path: Path,
) -> None:
    server_cert, server_key = make_cert(tmp_path)
    client_cert, client_key = make_client_cert(tmp_path, "dev1")
    async with CertServer(server_cert, server_key, client_cert) as server:
        ch = MqttChannel(
            f"mqtts://localhost:{server.port}",
            cert_file=str(client_cert),
            key_file=str(client_key),
            ca_file=str(server_cert),
        )
        await ch.start()
        try:
            await wait_state(ch, LinkState.CONNECTED)
        finally:
            await ch.close()
    assert server.peer_cn == "dev1"
    # CONNECT: protocol "MQTT" level 4, flags = clean session only (no user name, no password),
    # then the keepalive and an empty client id, and nothing after it.
    packet = server.connect_packet
    assert packet[2:9] == b"\x00\x04MQTT\x04"
    assert packet[9] == 0x02
    assert packet[12:] == b"\x00\x00"


async def test_tokens_never_reach_logs_states_or_errors(
    connector: Connector, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    ch = MqttChannel(
        connector.mqtt_url,
        TOKEN,
        insecure=True,
        backoff=FAST,
        on_state=lambda s: seen.append(repr(s)),
    )
    bad = MqttChannel(
        connector.mqtt_url,
        WRONG,
        insecure=True,
        backoff=FAST,
        on_state=lambda s: seen.append(repr(s)),
    )
    await ch.start()
    await bad.start()
    await wait_state(ch, LinkState.CONNECTED)
    await wait_state(bad, LinkState.AUTH_FAILED)
    connector.set_config_otau("dev1", MANIFEST)
    value = await asyncio.wait_for(anext(ch.values()), 5)
    await ch.acknowledge(value)
    connector.kick("dev1")
    await asyncio.sleep(0.5)  # lost, backed off, reconnected
    errors = []
    try:
        async for _ in bad.values():
            pass
    except AuthError as exc:
        errors.append(str(exc))
    await wait_state(ch, LinkState.CONNECTED)
    await ch.close()
    await bad.close()
    text = "\n".join([caplog.text, *seen, *errors, repr(ch), repr(bad)])
    assert seen and errors
    assert TOKEN not in text and WRONG not in text


async def test_an_unexpected_error_while_connecting_is_logged_and_retried(
    connector: Connector, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in one connection attempt must not end the channel silently (values() would wait
    forever); it is logged with its traceback and the channel tries again."""
    from otatui.murano import mqtt_connection

    real_open = mqtt_connection.MqttConnection.open
    calls = 0

    async def open_once_broken(self: mqtt_connection.MqttConnection, within: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("a bug")
        await real_open(self, within)

    monkeypatch.setattr(mqtt_connection.MqttConnection, "open", open_once_broken)
    log = StateLog()
    ch = MqttChannel(connector.mqtt_url, TOKEN, insecure=True, backoff=FAST, on_state=log)
    with caplog.at_level(logging.ERROR, logger="otatui.murano.mqtt"):
        await ch.start()
        try:
            backoff = await log.reach(LinkState.BACKOFF)
            assert log.states[backoff].reason == "connection failed: ValueError"
            await log.reach(LinkState.CONNECTED, after=backoff)
        finally:
            await ch.close()
    assert "Traceback" in caplog.text and "a bug" in caplog.text
