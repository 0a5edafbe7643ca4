"""MQTT 3.1.1 packet codec, the subset a Murano device uses (both directions, for tests too).

Covered: CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ,
PINGRESP, DISCONNECT; QoS 2 packets are recognised only so they can be refused. Decoding works on
one whole packet (fixed header already split off by :func:`read_packet`), so a malformed packet
raises :class:`MalformedPacket` and never leaves the stream half-read.

Why not amqtt's codec: see :mod:`otatui.connector.mqtt_broker`.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

# CONNACK return codes (MQTT 3.1.1 §3.2.2.3)
ACCEPTED = 0
UNACCEPTABLE_PROTOCOL = 1
IDENTIFIER_REJECTED = 2
SERVER_UNAVAILABLE = 3
BAD_USERNAME_OR_PASSWORD = 4
NOT_AUTHORIZED = 5

SUBACK_FAILURE = 0x80
MAX_REMAINING_LENGTH = 268_435_455


class MalformedPacket(Exception):
    """The bytes are not a valid MQTT 3.1.1 packet of the kind expected."""


class PacketTooLarge(MalformedPacket):
    pass


@dataclass(frozen=True)
class Packet:
    """One packet as read: type, the 4 flag bits and the bytes after the fixed header."""

    type: int
    flags: int
    body: bytes


@dataclass(frozen=True)
class Connect:
    protocol_name: str
    protocol_level: int
    client_id: str
    clean_session: bool
    keepalive: int
    username: str | None = None
    password: bytes | None = field(default=None, repr=False)
    will_topic: str | None = None
    will_message: bytes | None = None
    will_qos: int = 0
    will_retain: bool = False


@dataclass(frozen=True)
class Publish:
    topic: str
    payload: bytes
    qos: int = 0
    packet_id: int | None = None
    dup: bool = False
    retain: bool = False


@dataclass(frozen=True)
class Subscribe:
    packet_id: int
    topics: list[tuple[str, int]]


@dataclass(frozen=True)
class Unsubscribe:
    packet_id: int
    topics: list[str]


# ----- reading ----------------------------------------------------------------------------------


async def read_packet(reader: asyncio.StreamReader, max_size: int) -> Packet:
    """Read one packet. Raises IncompleteReadError at EOF, MalformedPacket on bad framing."""
    first = await reader.readexactly(1)
    length = 0
    for shift in range(0, 28, 7):
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
    else:
        raise MalformedPacket("remaining length longer than 4 bytes")
    if length > max_size:
        raise PacketTooLarge(f"packet of {length} bytes exceeds the {max_size}-byte limit")
    body = await reader.readexactly(length) if length else b""
    return Packet(first[0] >> 4, first[0] & 0x0F, body)


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MalformedPacket("packet ends early")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        value: int = struct.unpack("!H", self.take(2))[0]
        return value

    def binary(self) -> bytes:
        return self.take(self.u16())

    def string(self) -> str:
        raw = self.binary()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPacket("a string is not valid UTF-8") from None
        if "\x00" in text:
            raise MalformedPacket("a string contains U+0000")
        return text

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk

    @property
    def at_end(self) -> bool:
        return self.pos == len(self.data)


def decode_connect(packet: Packet) -> Connect:
    c = _Cursor(packet.body)
    name = c.string()
    level = c.u8()
    flags = c.u8()
    keepalive = c.u16()
    if flags & 0x01:
        raise MalformedPacket("CONNECT reserved flag set")
    will = bool(flags & 0x04)
    will_qos = (flags >> 3) & 0x03
    if will_qos == 3 or (not will and (will_qos or flags & 0x20)):
        raise MalformedPacket("CONNECT will flags inconsistent")
    client_id = c.string()
    will_topic = c.string() if will else None
    will_message = c.binary() if will else None
    username = c.string() if flags & 0x80 else None
    password = c.binary() if flags & 0x40 else None
    if not c.at_end:
        raise MalformedPacket("CONNECT has trailing bytes")
    return Connect(
        name,
        level,
        client_id,
        bool(flags & 0x02),
        keepalive,
        username,
        password,
        will_topic,
        will_message,
        will_qos,
        bool(flags & 0x20),
    )


def decode_publish(packet: Packet) -> Publish:
    qos = (packet.flags >> 1) & 0x03
    if qos == 3:
        raise MalformedPacket("PUBLISH with QoS 3")
    c = _Cursor(packet.body)
    topic = c.string()
    if not topic or "+" in topic or "#" in topic:
        raise MalformedPacket("PUBLISH topic empty or with a wildcard")
    packet_id = c.u16() if qos else None
    if packet_id == 0:
        raise MalformedPacket("PUBLISH packet id 0")
    return Publish(
        topic, c.rest(), qos, packet_id, bool(packet.flags & 0x08), bool(packet.flags & 0x01)
    )


def decode_packet_id(packet: Packet) -> int:
    """PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK: just a packet id."""
    c = _Cursor(packet.body)
    packet_id = c.u16()
    if not c.at_end:
        raise MalformedPacket("unexpected bytes after the packet id")
    return packet_id


def decode_subscribe(packet: Packet) -> Subscribe:
    if packet.flags != 0x02:
        raise MalformedPacket("SUBSCRIBE flags must be 0010")
    c = _Cursor(packet.body)
    packet_id = c.u16()
    topics = []
    while not c.at_end:
        topic = c.string()
        qos = c.u8()
        if qos > 2:
            raise MalformedPacket("SUBSCRIBE with QoS above 2")
        topics.append((topic, qos))
    if not topics:
        raise MalformedPacket("SUBSCRIBE without a topic")
    return Subscribe(packet_id, topics)


def decode_unsubscribe(packet: Packet) -> Unsubscribe:
    if packet.flags != 0x02:
        raise MalformedPacket("UNSUBSCRIBE flags must be 0010")
    c = _Cursor(packet.body)
    packet_id = c.u16()
    topics = []
    while not c.at_end:
        topics.append(c.string())
    if not topics:
        raise MalformedPacket("UNSUBSCRIBE without a topic")
    return Unsubscribe(packet_id, topics)


def decode_connack(packet: Packet) -> tuple[bool, int]:
    """(session present, return code)."""
    if len(packet.body) != 2:
        raise MalformedPacket("CONNACK must be 2 bytes")
    return bool(packet.body[0] & 1), packet.body[1]


def decode_suback(packet: Packet) -> tuple[int, list[int]]:
    c = _Cursor(packet.body)
    packet_id = c.u16()
    return packet_id, list(c.rest())


# ----- writing ----------------------------------------------------------------------------------


def _remaining_length(n: int) -> bytes:
    if n > MAX_REMAINING_LENGTH:
        raise ValueError("MQTT packet too large")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + _remaining_length(len(body)) + body


def _string(text: str) -> bytes:
    return _binary(text.encode("utf-8"))


def _binary(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError("MQTT string longer than 65535 bytes")
    return struct.pack("!H", len(data)) + data


def encode_connack(return_code: int, session_present: bool = False) -> bytes:
    return _packet(CONNACK, 0, bytes([int(session_present), return_code]))


def encode_publish(
    topic: str,
    payload: bytes,
    qos: int = 0,
    packet_id: int | None = None,
    *,
    dup: bool = False,
    retain: bool = False,
) -> bytes:
    if qos not in (0, 1, 2) or (qos > 0) != (packet_id is not None):
        raise ValueError("a QoS 1/2 PUBLISH needs a packet id, QoS 0 none")
    body = _string(topic) + (struct.pack("!H", packet_id) if packet_id is not None else b"")
    flags = (0x08 if dup else 0) | qos << 1 | (0x01 if retain else 0)
    return _packet(PUBLISH, flags, body + payload)


def encode_puback(packet_id: int) -> bytes:
    return _packet(PUBACK, 0, struct.pack("!H", packet_id))


def encode_suback(packet_id: int, granted: list[int]) -> bytes:
    return _packet(SUBACK, 0, struct.pack("!H", packet_id) + bytes(granted))


def encode_unsuback(packet_id: int) -> bytes:
    return _packet(UNSUBACK, 0, struct.pack("!H", packet_id))


def encode_pingresp() -> bytes:
    return _packet(PINGRESP, 0, b"")


def encode_pingreq() -> bytes:
    return _packet(PINGREQ, 0, b"")


def encode_disconnect() -> bytes:
    return _packet(DISCONNECT, 0, b"")


def encode_connect(connect: Connect) -> bytes:
    flags = (0x02 if connect.clean_session else 0) | (0x80 if connect.username is not None else 0)
    flags |= 0x40 if connect.password is not None else 0
    payload = _string(connect.client_id)
    if connect.will_topic is not None:
        flags |= 0x04 | connect.will_qos << 3 | (0x20 if connect.will_retain else 0)
        payload += _string(connect.will_topic) + _binary(connect.will_message or b"")
    if connect.username is not None:
        payload += _string(connect.username)
    if connect.password is not None:
        payload += _binary(connect.password)
    head = _string(connect.protocol_name) + bytes([connect.protocol_level, flags])
    return _packet(CONNECT, 0, head + struct.pack("!H", connect.keepalive) + payload)


def encode_subscribe(packet_id: int, topics: list[tuple[str, int]]) -> bytes:
    body = struct.pack("!H", packet_id) + b"".join(_string(t) + bytes([q]) for t, q in topics)
    return _packet(SUBSCRIBE, 0x02, body)


def encode_unsubscribe(packet_id: int, topics: list[str]) -> bytes:
    body = struct.pack("!H", packet_id) + b"".join(_string(t) for t in topics)
    return _packet(UNSUBSCRIBE, 0x02, body)
