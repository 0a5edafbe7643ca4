"""MqttChannel pieces that need no socket: URL rules, batch JSON, topic parsing, de-duplication."""

from __future__ import annotations

import asyncio
import json

import pytest

from otatui.murano.channel import (
    Channel,
    ChannelError,
    LinkState,
    NotConnected,
    ResourceValue,
    TimedValue,
)
from otatui.murano.mqtt import MqttChannel, batch_payload
from otatui.murano.mqtt_socket import MqttEndpoint

TOKEN = "Ed9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK9y"


def test_endpoint_defaults_to_tls_on_8883() -> None:
    assert MqttEndpoint.parse("mqtts://abc.m2.exosite.io") == MqttEndpoint(
        "abc.m2.exosite.io", 8883, True
    )
    assert MqttEndpoint.parse("mqtts://h:443").port == 443
    assert MqttEndpoint.parse("mqtt://127.0.0.1", insecure=True) == MqttEndpoint(
        "127.0.0.1", 1883, False
    )


@pytest.mark.parametrize(
    ("url", "insecure", "message"),
    [
        ("mqtt://h:1883", False, "insecure = true"),
        ("https://h", True, "expected mqtts://"),
        ("mqtts://", False, "expected mqtts://"),
        ("mqtts://user:pw@h", False, "must not carry credentials"),
        ("mqtts://h:99999", False, "invalid MQTT URL"),
    ],
)
def test_endpoint_refusals(url: str, insecure: bool, message: str) -> None:
    with pytest.raises(ChannelError, match=message):
        MqttEndpoint.parse(url, insecure=insecure)


def test_credentials_are_one_of_token_or_certificate() -> None:
    with pytest.raises(ChannelError, match="either a token or a client certificate"):
        MqttChannel("mqtts://h")
    with pytest.raises(ChannelError, match="either a token or a client certificate"):
        MqttChannel("mqtts://h", TOKEN, cert_file="c.pem", key_file="k.pem")
    with pytest.raises(ChannelError, match="needs an mqtts:// URL"):
        MqttChannel("mqtt://h", cert_file="c.pem", key_file="k.pem", insecure=True)
    with pytest.raises(ChannelError, match="cannot load TLS files"):
        MqttChannel("mqtts://h", cert_file="/nonexistent.pem", key_file="/nonexistent.key")


def test_token_is_not_in_repr_or_state() -> None:
    channel = MqttChannel("mqtts://h", TOKEN)
    assert isinstance(channel, Channel)
    assert channel.protocol == "mqtt"
    assert TOKEN not in repr(channel)
    assert TOKEN not in str(channel.state)
    assert channel.state.state == LinkState.STOPPED


async def test_write_without_connection_raises_not_connected() -> None:
    channel = MqttChannel("mqtts://h", TOKEN)
    with pytest.raises(NotConnected) as info:
        await channel.write("otau_in", "{}")
    assert TOKEN not in str(info.value)
    with pytest.raises(ChannelError, match="invalid resource alias"):
        await channel.write("a/b", "x")


def test_batch_payload_uses_microseconds_and_groups_by_timestamp() -> None:
    records = [
        TimedValue("otau_in", '{"status":"INIT"}', 1700000000.25),
        TimedValue("other", "7", 1700000000.25),
        TimedValue("otau_in", '{"status":"TEST"}', 1700000000.25),  # same alias, same time
        TimedValue("otau_in", "ünïcode", 1700000001.0),
    ]
    body = json.loads(batch_payload(records))
    assert body == [
        {"timestamp": 1700000000250000, "values": {"otau_in": '{"status":"INIT"}', "other": "7"}},
        {"timestamp": 1700000000250000, "values": {"otau_in": '{"status":"TEST"}'}},
        {"timestamp": 1700000001000000, "values": {"otau_in": "ünïcode"}},
    ]


def _received(channel: MqttChannel) -> list[ResourceValue]:
    out = []
    while not channel._queue.empty():
        item = channel._queue.get_nowait()
        assert item is not None
        out.append(item)
    return out


async def test_topics_parse_and_replays_are_dropped() -> None:
    channel = MqttChannel("mqtts://h", TOKEN)
    raw = b'{"version":"2.0","name":"fw"}'
    channel._message("$resource/config_otau/1538080072997000", raw)
    channel._message("$resource/config_otau/1538080072997000", raw)  # replay after reconnect
    channel._message("$resource/config_otau/1538080072997000", raw + b" ")  # different bytes
    channel._message("$resource/config_otau/1538080099000000", raw)  # set again, later
    channel._message("$provision/abc", b"token-looking")  # not a resource: ignored
    channel._message("$resource/data_out", b"reboot")  # no timestamp suffix
    got = _received(channel)
    assert [(v.alias, v.raw, v.timestamp, v.source) for v in got] == [
        ("config_otau", raw.decode(), 1538080072.997, "mqtt"),
        ("config_otau", raw.decode() + " ", 1538080072.997, "mqtt"),
        ("config_otau", raw.decode(), 1538080099.0, "mqtt"),
        ("data_out", "reboot", None, "mqtt"),
    ]


async def test_non_utf8_payload_round_trips_byte_for_byte() -> None:
    channel = MqttChannel("mqtts://h", TOKEN)
    payload = b'{"name":"\xff\xfe"}'
    channel._message("$resource/config_otau/1", payload)
    (value,) = _received(channel)
    assert value.raw.encode("utf-8", "surrogateescape") == payload


async def test_dedupe_memory_is_bounded() -> None:
    channel = MqttChannel("mqtts://h", TOKEN)
    for i in range(5000):
        channel._message(f"$resource/config_otau/{i}", b"x" * 100)
    assert len(channel._seen) <= 512
    assert len(_received(channel)) == 5000


async def test_values_end_after_close() -> None:
    channel = MqttChannel("mqtts://h", TOKEN)
    channel._message("$resource/config_otau/1", b"v")
    await channel.close()
    assert [v.raw async for v in channel.values()] == ["v"]
    assert [v async for v in channel.values()] == []
    assert channel.state.state == LinkState.STOPPED


async def test_cancelled_anext_loses_nothing() -> None:
    channel = MqttChannel("mqtts://h", TOKEN)
    values = channel.values()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(values), 0.05)
    waiting = asyncio.create_task(anext(values))
    other = asyncio.create_task(anext(channel.values()))
    await asyncio.sleep(0)
    channel._message("$resource/config_otau/1", b"v")
    assert (await waiting).raw == "v"
    await channel.close()
    with pytest.raises(StopAsyncIteration):
        await other
    with pytest.raises(StopAsyncIteration):
        await anext(values)
