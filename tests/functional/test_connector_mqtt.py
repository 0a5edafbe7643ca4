"""The local connector's MQTT endpoint on real sockets:paho-mqtt as the device, and a raw peer."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from connector_helpers import PahoDevice, RawMqtt, make_cert, tls_connector

from otatui.connector import Connector
from otatui.connector import mqtt_codec as codec
from otatui.connector.mqtt_broker import parse_batch

TOKEN = "Ed9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK9y"
MANIFEST = '{"version":"2.0.0","name":"fw","type":"FILE","payload":"fw.bin"}'


@pytest.fixture
async def connector() -> AsyncIterator[Connector]:
    async with Connector(devices=[("dev1", TOKEN), ("fresh", None)]) as c:
        yield c


@pytest.fixture
async def device(connector: Connector) -> AsyncIterator[PahoDevice]:
    d = PahoDevice(connector.ports["mqtt"], TOKEN)
    rc = await d.start()
    assert rc == 0
    yield d
    await d.stop()


async def test_write_is_stored_before_puback(device: PahoDevice, connector: Connector):
    await device.publish("$resource/otau_in", '{"version":"1.0.0","status":"INSTALLED_VERSION"}')
    await device.publish("$resource/data_in", "98.7", qos=0)
    await connector.wait_for_report("dev1", "data_in")
    got = [(r.alias, r.value, r.via) for r in connector.reports("dev1")]
    assert got == [
        ("otau_in", '{"version":"1.0.0","status":"INSTALLED_VERSION"}', "mqtt"),
        ("data_in", "98.7", "mqtt"),
    ]
    assert connector.is_connected("dev1")


async def test_app_set_value_is_pushed_without_subscribe_and_acked_by_echo(
    device: PahoDevice, connector: Connector
):
    before = time.time()
    connector.set_config_otau("dev1", MANIFEST)
    topic, payload = await device.message()
    prefix, alias, micros = topic.split("/")
    assert (prefix, alias, payload) == ("$resource", "config_otau", MANIFEST.encode())
    assert len(micros) == 16 and before - 1 < int(micros) / 1e6 < time.time() + 1
    await device.publish("$resource/config_otau", MANIFEST.encode() + b" ")  # not identical
    resource = connector.resource("dev1", "config_otau")
    assert resource is not None and not resource.acked
    await device.publish("$resource/config_otau", payload)
    resource = connector.resource("dev1", "config_otau")
    assert resource is not None and resource.acked and resource.value == MANIFEST
    assert connector.reports("dev1")[-1].ack


async def test_replay_after_kick_until_acknowledged(connector: Connector):
    connector.set_config_otau("dev1", MANIFEST)  # set while the device is offline
    device = PahoDevice(connector.ports["mqtt"], TOKEN)
    assert await device.start() == 0
    try:
        first_topic, first = await device.message()
        assert first == MANIFEST.encode()
        # Kicked without acknowledging: paho reconnects and the value is replayed.
        assert connector.kick("dev1") == 1
        await device.next(device.disconnects)
        assert await device.next(device.connacks) == 0
        topic, again = await device.message()
        assert (topic, again) == (first_topic, first)
        await device.publish("$resource/config_otau", again)
        # Acknowledged: a further kick brings no replay.
        connector.kick("dev1")
        assert await device.next(device.connacks) == 0
        await device.no_message(0.5)
    finally:
        await device.stop()


async def test_bad_token_gets_connack_4_from_paho(connector: Connector):
    device = PahoDevice(connector.ports["mqtt"], "x" * 40)
    rc = await device.start()
    try:
        assert rc.is_failure and rc.value == 134  # paho's name for 3.1.1 code 4
        assert str(rc) == "Bad user name or password"
    finally:
        await device.stop()


async def test_bad_token_gets_connack_4_and_close(connector: Connector):
    raw = await RawMqtt.open(connector.ports["mqtt"])
    assert await raw.connect("y" * 40) == codec.BAD_USERNAME_OR_PASSWORD
    assert await raw.closed_by_peer()
    await raw.close()
    assert connector.mqtt.connects == 0


async def test_provisioning_over_mqtt_without_subscribe(connector: Connector):
    anonymous = RawMqtt(*await asyncio.open_connection("127.0.0.1", connector.ports["mqtt"]))
    assert await anonymous.connect(None) == codec.ACCEPTED
    anonymous.send(codec.encode_publish("$provision/fresh", b"", 1, 1))
    reply = codec.decode_publish(await anonymous.read())
    assert reply.topic == "$provision/fresh"
    token = reply.payload
    assert len(token) == 40 and token.isalnum()
    puback = await anonymous.read()
    assert puback.type == codec.PUBACK and codec.decode_packet_id(puback) == 1
    # The connection now acts as the device (murano-client keeps using it)...
    anonymous.send(codec.encode_publish("$resource/otau_in", b"same connection", 1, 2))
    assert codec.decode_packet_id(await anonymous.read()) == 2
    connector.set_value("fresh", "config_otau", "m")
    assert codec.decode_publish(await anonymous.read()).payload == b"m"
    assert connector.is_connected("fresh")
    await anonymous.close()
    # ... and a reconnect with the token works (what Exosite's C sample and otatui do).
    device = PahoDevice(connector.ports["mqtt"], token.decode())
    assert await device.start() == 0
    await device.publish("$resource/otau_in", "hello")
    await device.stop()
    assert [r.value for r in connector.reports("fresh")] == ["same connection", "hello"]


async def test_provisioning_refused_gets_no_reply(connector: Connector):
    anonymous = PahoDevice(connector.ports["mqtt"])
    assert await anonymous.start() == 0
    try:
        # Already provisioned / not whitelisted: no answer (as Murano), clients must bound the wait.
        await anonymous.publish("$provision/dev1", b"")
        await anonymous.publish("$provision/unknown", b"", qos=0)
        await anonymous.no_message(0.5)
        assert anonymous.disconnects.empty()
    finally:
        await anonymous.stop()


async def test_provision_reply_also_with_subscribe(connector: Connector):
    raw = await RawMqtt.open(connector.ports["mqtt"])
    assert await raw.connect(None) == codec.ACCEPTED
    raw.send(codec.encode_subscribe(7, [("$provision/#", 1), ("$resource/#", 2)]))
    suback = await raw.read()
    assert suback.type == codec.SUBACK
    assert codec.decode_suback(suback) == (7, [1, 1])
    raw.send(codec.encode_publish("$provision/fresh", b"", 0))
    reply = codec.decode_publish(await raw.read())
    assert reply.topic == "$provision/fresh" and len(reply.payload) == 40
    await raw.close()


async def test_anonymous_client_may_only_provision(connector: Connector):
    raw = await RawMqtt.open(connector.ports["mqtt"])
    assert await raw.connect(None) == codec.ACCEPTED
    raw.send(codec.encode_publish("$resource/otau_in", b"x", 1, 1))
    assert await raw.closed_by_peer()
    await raw.close()
    assert connector.reports("dev1") == []


async def test_batch_with_seconds_and_microseconds(device: PahoDevice, connector: Connector):
    batch = [
        {"timestamp": 1_700_000_000, "values": {"otau_in": '{"status":"INIT"}'}},
        {"timestamp": 1_700_000_001_500_000, "values": {"otau_in": "b", "temp": 21.5}},
    ]
    await device.publish("$resource.batch", json.dumps(batch))
    got = [(r.alias, r.timestamp, r.value, r.via) for r in connector.reports("dev1")]
    assert got == [
        ("otau_in", 1_700_000_000, '{"status":"INIT"}', "mqtt-batch"),
        ("otau_in", 1_700_000_001.5, "b", "mqtt-batch"),
        ("temp", 1_700_000_001.5, "21.5", "mqtt-batch"),
    ]


async def test_malformed_batch_is_acked_dropped_and_noted(device: PahoDevice, connector: Connector):
    await device.publish("$resource.batch", "{not json")
    await device.publish("$resource.batch", json.dumps([{"timestamp": "x", "values": {}}]))
    assert connector.reports("dev1") == []
    assert [r.identity for r in connector.mqtt.rejected] == ["dev1", "dev1"]


def test_parse_batch_shapes():
    assert parse_batch(b'{"values":{"a":"1"}}', 5.0) == [("a", 5.0, "1")]
    assert parse_batch(b'[{"timestamp":1e15,"values":{"a":{"x":1}}}]', 0) == [("a", 1e9, '{"x":1}')]
    for bad in (b"[1]", b'"x"', b'[{"values":[]}]', b'[{"timestamp":true,"values":{}}]'):
        with pytest.raises(ValueError):
            parse_batch(bad, 0)


async def test_qos2_publish_closes_the_connection(connector: Connector):
    raw = await RawMqtt.open(connector.ports["mqtt"])
    assert await raw.connect(TOKEN) == codec.ACCEPTED
    raw.send(codec.encode_publish("$resource/otau_in", b"x", 2, 3))
    assert await raw.closed_by_peer()
    await raw.close()
    assert connector.reports("dev1") == []


async def test_ping_unsubscribe_and_disconnect(connector: Connector):
    raw = await RawMqtt.open(connector.ports["mqtt"])
    assert await raw.connect(TOKEN) == codec.ACCEPTED
    raw.send(codec.encode_pingreq())
    assert (await raw.read()).type == codec.PINGRESP
    raw.send(codec.encode_unsubscribe(4, ["$resource/config_otau"]))
    unsuback = await raw.read()
    assert unsuback.type == codec.UNSUBACK and codec.decode_packet_id(unsuback) == 4
    raw.send(codec.encode_disconnect())
    assert await raw.closed_by_peer()
    await raw.close()
    assert not connector.is_connected("dev1")


async def test_keepalive_is_enforced(connector: Connector):
    raw = await RawMqtt.open(connector.ports["mqtt"])
    assert await raw.connect(TOKEN, keepalive=1) == codec.ACCEPTED
    started = time.monotonic()
    assert await raw.closed_by_peer(within=5)
    assert 1.3 < time.monotonic() - started < 3
    await raw.close()


async def test_a_new_connection_takes_over_the_identity(connector: Connector):
    first = await RawMqtt.open(connector.ports["mqtt"])
    assert await first.connect(TOKEN) == codec.ACCEPTED
    second = await RawMqtt.open(connector.ports["mqtt"])
    assert await second.connect(TOKEN) == codec.ACCEPTED
    assert await first.closed_by_peer()
    connector.set_value("dev1", "config_otau", "v")
    publish = codec.decode_publish(await second.read())
    assert publish.payload == b"v" and publish.qos == 1 and publish.packet_id is not None
    second.send(codec.encode_puback(publish.packet_id))
    assert connector.is_connected("dev1")
    await first.close()
    await second.close()


@pytest.mark.parametrize(
    ("client_id", "level", "expected"),
    [
        ("dev1", 4, codec.ACCEPTED),
        ("someone-else", 4, codec.IDENTIFIER_REJECTED),
        ("", 3, codec.ACCEPTED),
        ("", 5, codec.UNACCEPTABLE_PROTOCOL),
    ],
)
async def test_connect_variants(connector: Connector, client_id: str, level: int, expected: int):
    raw = await RawMqtt.open(connector.ports["mqtt"])
    assert await raw.connect(TOKEN, client_id=client_id, level=level) == expected
    await raw.close()


async def test_first_packet_must_be_connect(connector: Connector):
    raw = await RawMqtt.open(connector.ports["mqtt"])
    raw.send(codec.encode_pingreq())
    assert await raw.closed_by_peer()
    await raw.close()


@pytest.mark.slow
async def test_a_thousand_devices_connected_at_once(connector: Connector):
    n = 1000
    for i in range(n):
        connector.add_device(f"d{i}", f"{i:040d}")
    started = time.monotonic()

    async def one(i: int) -> RawMqtt:
        raw = await RawMqtt.open(connector.ports["mqtt"])
        assert await raw.connect(f"{i:040d}") == codec.ACCEPTED
        return raw

    peers = await asyncio.gather(*(one(i) for i in range(n)))
    connected = time.monotonic() - started
    assert connector.mqtt.connection_count == n
    for i in range(n):
        connector.set_value(f"d{i}", "config_otau", f"m{i}")
    payloads = [codec.decode_publish(await p.read()).payload for p in peers]
    assert payloads == [f"m{i}".encode() for i in range(n)]
    await asyncio.gather(*(p.close() for p in peers))
    assert connected < 20


async def test_tls_listeners_for_http_and_mqtt(tmp_path: Path):
    pair = make_cert(tmp_path)
    cert = pair[0]
    async with tls_connector(pair, devices=[("dev1", TOKEN)]) as c:
        assert "http" not in c.ports and c.https_url.startswith("https://127.0.0.1:")
        async with httpx.AsyncClient(
            base_url=c.https_url, verify=ssl.create_default_context(cafile=cert)
        ) as client:
            r = await client.post(
                "/onep:v1/stack/alias", data={"otau_in": "tls"}, headers={"X-Exosite-CIK": TOKEN}
            )
            assert r.status_code == 204
        c.add_content("f", b"x" * 70_000)
        async with httpx.AsyncClient(
            base_url=c.https_url, verify=ssl.create_default_context(cafile=cert)
        ) as client:
            r = await client.get(
                "/provision/download",
                params={"id": "f"},
                headers={"X-Exosite-CIK": TOKEN, "Range": "bytes=1-"},
            )
            assert r.status_code == 206 and r.content == b"x" * 69_999
        device = PahoDevice(c.ports["mqtts"], TOKEN, ca_file=cert)
        assert await device.start() == 0
        c.set_value("dev1", "config_otau", MANIFEST)
        assert (await device.message())[1] == MANIFEST.encode()
        await device.stop()
