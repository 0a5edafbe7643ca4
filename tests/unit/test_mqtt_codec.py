"""The connector's MQTT 3.1.1 codec: round trips, framing limits and malformed packets."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otatui.connector import mqtt_codec as codec

topics = st.text(
    alphabet=st.characters(blacklist_characters="+#\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=60,
)


def split(data: bytes) -> codec.Packet:
    """Parse one packet from bytes through the stream reader, and check nothing is left."""

    async def read() -> codec.Packet:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        packet = await codec.read_packet(reader, 1 << 28)
        assert await reader.read() == b""
        return packet

    return asyncio.run(read())


@given(
    topic=topics,
    payload=st.binary(max_size=300),
    qos=st.sampled_from([0, 1, 2]),
    packet_id=st.integers(1, 0xFFFF),
    dup=st.booleans(),
    retain=st.booleans(),
)
def test_publish_round_trip(topic, payload, qos, packet_id, dup, retain):
    pid = packet_id if qos else None
    data = codec.encode_publish(topic, payload, qos, pid, dup=dup, retain=retain)
    packet = split(data)
    assert packet.type == codec.PUBLISH
    assert codec.decode_publish(packet) == codec.Publish(topic, payload, qos, pid, dup, retain)


@given(
    client_id=st.text(max_size=30).filter(lambda t: "\x00" not in t),
    username=st.none() | st.text(max_size=20).filter(lambda t: "\x00" not in t),
    password=st.none() | st.binary(max_size=50),
    keepalive=st.integers(0, 0xFFFF),
    clean=st.booleans(),
    will=st.booleans(),
)
def test_connect_round_trip(client_id, username, password, keepalive, clean, will):
    connect = codec.Connect(
        "MQTT",
        4,
        client_id,
        clean,
        keepalive,
        username,
        password,
        "last/will" if will else None,
        b"bye" if will else None,
        1 if will else 0,
        will,
    )
    assert codec.decode_connect(split(codec.encode_connect(connect))) == connect


@given(st.lists(st.tuples(topics, st.sampled_from([0, 1, 2])), min_size=1, max_size=5))
def test_subscribe_round_trip(subs):
    packet = split(codec.encode_subscribe(42, subs))
    assert codec.decode_subscribe(packet) == codec.Subscribe(42, subs)


def test_unsubscribe_and_small_packets():
    assert codec.decode_unsubscribe(split(codec.encode_unsubscribe(3, ["a", "b"]))) == (
        codec.Unsubscribe(3, ["a", "b"])
    )
    assert codec.decode_packet_id(split(codec.encode_puback(65535))) == 65535
    assert codec.decode_packet_id(split(codec.encode_unsuback(9))) == 9
    assert codec.decode_connack(split(codec.encode_connack(4))) == (False, 4)
    assert codec.decode_connack(split(codec.encode_connack(0, True))) == (True, 0)
    assert codec.decode_suback(split(codec.encode_suback(5, [0, 1, 0x80]))) == (5, [0, 1, 0x80])
    assert codec.encode_pingreq() == b"\xc0\x00"
    assert codec.encode_pingresp() == b"\xd0\x00"
    assert codec.encode_disconnect() == b"\xe0\x00"


@pytest.mark.parametrize(
    ("length", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length_boundaries(length: int, encoded: bytes):
    assert codec._remaining_length(length) == encoded


def test_large_publish_frames_correctly():
    payload = bytes(range(256)) * 4096  # 1 MiB, Murano's per-value limit
    packet = split(codec.encode_publish("$resource/big", payload, 1, 1))
    assert codec.decode_publish(packet).payload == payload


def test_remaining_length_over_four_bytes_is_malformed():
    with pytest.raises(codec.MalformedPacket):
        split(b"\x30\xff\xff\xff\xff\x01")


def test_packet_over_the_limit_is_refused_before_reading_it():
    async def read() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(b"\x30\x80\x80\x01")  # announces 16 KiB
        await codec.read_packet(reader, 1024)

    with pytest.raises(codec.PacketTooLarge):
        asyncio.run(read())


def test_truncated_stream_is_incomplete():
    with pytest.raises(asyncio.IncompleteReadError):
        split(codec.encode_publish("a/b", b"xyz")[:-1])


@pytest.mark.parametrize(
    ("kind", "flags", "body", "decode"),
    [
        (codec.PUBLISH, 0, b"\x00\x03a/b"[:-1], codec.decode_publish),  # topic cut short
        (codec.PUBLISH, 0b0110, b"\x00\x01a", codec.decode_publish),  # QoS 3
        (codec.PUBLISH, 0, b"\x00\x03a/+", codec.decode_publish),  # wildcard in topic
        (codec.PUBLISH, 0b0010, b"\x00\x01a\x00\x00", codec.decode_publish),  # packet id 0
        (codec.PUBLISH, 0, b"\x00\x02\xff\xfe", codec.decode_publish),  # not UTF-8
        (codec.PUBLISH, 0, b"\x00\x00", codec.decode_publish),  # empty topic
        (codec.SUBSCRIBE, 0, b"\x00\x01\x00\x01a\x00", codec.decode_subscribe),  # flags 0000
        (codec.SUBSCRIBE, 2, b"\x00\x01", codec.decode_subscribe),  # no topic
        (codec.SUBSCRIBE, 2, b"\x00\x01\x00\x01a\x03", codec.decode_subscribe),  # QoS 3
        (codec.UNSUBSCRIBE, 2, b"\x00\x01", codec.decode_unsubscribe),
        (codec.PUBACK, 0, b"\x00\x01\x00", codec.decode_packet_id),
        (codec.CONNACK, 0, b"\x00", codec.decode_connack),
    ],
)
def test_malformed_packets(kind, flags, body, decode):
    with pytest.raises(codec.MalformedPacket):
        decode(codec.Packet(kind, flags, body))


def test_malformed_connect():
    good = codec.encode_connect(codec.Connect("MQTT", 4, "", True, 60, "", b"t"))
    packet = split(good)
    body = bytearray(packet.body)
    flags_at = 2 + 4 + 1
    reserved = bytes(body[:flags_at]) + bytes([body[flags_at] | 0x01]) + bytes(body[flags_at + 1 :])
    with pytest.raises(codec.MalformedPacket):
        codec.decode_connect(codec.Packet(codec.CONNECT, 0, reserved))
    with pytest.raises(codec.MalformedPacket):
        codec.decode_connect(codec.Packet(codec.CONNECT, 0, bytes(body) + b"x"))
    with pytest.raises(codec.MalformedPacket):
        codec.decode_connect(codec.Packet(codec.CONNECT, 0, bytes(body[:-1])))


def test_encoder_argument_checks():
    with pytest.raises(ValueError):
        codec.encode_publish("a", b"", 1, None)
    with pytest.raises(ValueError):
        codec.encode_publish("a", b"", 0, 5)
    with pytest.raises(ValueError):
        codec.encode_publish("a" * 70_000, b"")
