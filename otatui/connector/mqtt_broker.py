"""The Murano MQTT device endpoint (murano-device-api.md §1.5, §1.6, §3; checklist §5.3).

Semantics served:
- CONNECT with an empty client id (clean session ignored, as Murano does); token mode: username
  empty, password = token → CONNACK 0; an unknown token → CONNACK 4 "bad user name or password"
  and close. A non-empty client id must equal the device identity (else CONNACK 2).
- Anonymous connections (no username, no password) may only publish ``$provision/<identity>``;
  the token comes back as a PUBLISH on ``$provision/<identity>`` without any SUBSCRIBE, and the
  connection then continues as that device (pushes, replay, writes). Exosite's C sample and
  otatui disconnect and reconnect with the token, which works too; Exosite's murano-client keeps
  publishing on the anonymous connection and its reconnect handler crashes on a server-side close
  (paho rc 7 is not in its table), so closing here would strand it. Activation refused (not
  whitelisted / already provisioned) → no reply and the connection stays open, as observed with
  Murano (§7). Any other publish by an anonymous client closes the connection.
- Devices publish ``$resource/<alias>`` (QoS 0/1, PUBACK after the value is stored) and
  ``$resource.batch`` (JSON array of ``{"timestamp": <s or µs>, "values": {...}}``; a timestamp
  below 1e11 is seconds).
  A write of the identical value of a pending app-set value is its acknowledgement.
- Subscriptions are implicit: every app-set value is pushed as ``$resource/<alias>/<µs>`` QoS 1,
  and unacknowledged values are replayed after every (re)connect. SUBSCRIBE is SUBACKed (QoS
  granted at most 1), UNSUBSCRIBE is UNSUBACKed, neither changes what is delivered.
- QoS 2 is not supported: a QoS 2 PUBLISH closes the connection (MQTT 3.1.1 has no other refusal).
- Keepalive: no packet within 1.5 × keepalive closes the connection. One connection per device
  identity: a new one takes over and the old one is closed, as brokers do for a reused client id.

Why a codec of our own instead of amqtt (0.12.1 was read for this): as a dependency amqtt pins
``websockets==15.0.1`` and pulls psutil, pwdlib/argon2, typer, transitions, dacite and PyYAML into
every install, for a broker whose model (subscriptions, retained messages, sessions keyed by client
id, ACL plugins that can only PUBACK-and-drop) is not Murano's: here subscriptions are implicit,
every device has the empty client id, sessions are keyed by token, replay comes from the
resources' acknowledgement state and writes must reach the connector's resource model. Using its
broker would mean overriding most of it through plugins; using only its packet classes would
still install all of the above, and they decode field by field from the stream. The 3.1.1 subset a
device needs is a few hundred lines (:mod:`.mqtt_codec`) with its own unit tests; paho-mqtt, the
client the project uses, is the test peer for interoperability.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from dataclasses import dataclass, field
from typing import Any

from . import mqtt_codec as codec
from .connections import Connections
from .faults import Faults
from .http_server import close_gracefully
from .state import ConnectorState, Device, ProvisioningError, Resource

log = logging.getLogger(__name__)

RESOURCE_PREFIX = "$resource/"
BATCH_TOPIC = "$resource.batch"
PROVISION_PREFIX = "$provision/"
MAX_PACKET = 8 * 1024 * 1024
CONNECT_TIMEOUT_S = 10.0
KEEPALIVE_FACTOR = 1.5
SECONDS_LIMIT = 1e11  # batch timestamps below this are seconds, above it microseconds


class _Close(Exception):
    """End this connection (reason logged at debug level)."""


class _Provisioned(Exception):
    """An anonymous connection just activated ``device``: it continues as that device."""

    def __init__(self, device: Device) -> None:
        super().__init__(device.identity)
        self.device = device


@dataclass(eq=False)
class _Session:
    writer: asyncio.StreamWriter
    device: Device | None
    next_id: int = 0
    inflight: dict[int, str] = field(default_factory=dict)  # packet id -> alias (QoS 1 pushes)

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def push(self, resource: Resource) -> None:
        self.next_id = self.next_id % 0xFFFF + 1
        packet_id = self.next_id
        self.inflight[packet_id] = resource.alias
        topic = f"{RESOURCE_PREFIX}{resource.alias}/{int(resource.set_at * 1_000_000)}"
        self.send(
            codec.encode_publish(
                topic, resource.value.encode("utf-8", "surrogateescape"), 1, packet_id
            )
        )

    def close(self) -> None:
        self.writer.transport.abort()


@dataclass
class BatchRejection:
    identity: str
    reason: str


class MqttBroker:
    """``asyncio.start_server`` callback serving Murano MQTT semantics on ``state``."""

    def __init__(
        self, state: ConnectorState, *, max_packet: int = MAX_PACKET, faults: Faults | None = None
    ) -> None:
        self.state = state
        self.max_packet = max_packet
        self.faults = faults if faults is not None else Faults()  # only unconfirmed_writes
        self._sessions: dict[str, _Session] = {}
        self._connections = Connections()
        self.rejected: list[BatchRejection] = []  # malformed batches, for tests and the demo
        self.connects = 0  # accepted CONNECTs, for tests

    # ----- application side ---------------------------------------------------------------------

    def kick(self, identity: str) -> int:
        session = self._sessions.pop(identity, None)
        if session is None:
            return 0
        session.close()
        return 1

    def is_connected(self, identity: str) -> bool:
        return identity in self._sessions

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def close_connections(self) -> None:
        await self._connections.close_all()

    # ----- connections --------------------------------------------------------------------------

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with self._connections.serving():
                await self._serve(reader, writer)
        except (_Close, codec.MalformedPacket) as exc:
            log.debug("MQTT connection closed: %s", exc)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except asyncio.CancelledError:
            # Shutting down. This is the connection's top-level task: ending it cancelled makes
            # Python 3.11's start_server callback log a spurious "Unhandled exception".
            pass
        finally:
            close_gracefully(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            first = await codec.read_packet(reader, self.max_packet)
        if first.type != codec.CONNECT:
            raise _Close("first packet is not CONNECT")
        connect = codec.decode_connect(first)
        if connect.protocol_name not in ("MQTT", "MQIsdp") or connect.protocol_level not in (3, 4):
            writer.write(codec.encode_connack(codec.UNACCEPTABLE_PROTOCOL))
            await writer.drain()
            raise _Close("unsupported protocol level")
        device: Device | None = None
        if connect.password is not None or connect.username:
            token = (connect.password or b"").decode("utf-8", "replace")
            device = self.state.authenticate(token)
            if device is None:
                writer.write(codec.encode_connack(codec.BAD_USERNAME_OR_PASSWORD))
                await writer.drain()
                raise _Close("bad token")
            if connect.client_id not in ("", device.identity):
                writer.write(codec.encode_connack(codec.IDENTIFIER_REJECTED))
                await writer.drain()
                raise _Close("client id is not the device identity")
        session = _Session(writer, device)
        writer.write(codec.encode_connack(codec.ACCEPTED))
        self.connects += 1
        keepalive = connect.keepalive * KEEPALIVE_FACTOR if connect.keepalive else None
        if device is None:
            try:
                await self._loop(reader, session, keepalive)
                return
            except _Provisioned as provisioned:
                device = session.device = provisioned.device
        old = self._sessions.get(device.identity)
        if old is not None:
            old.close()
        self._sessions[device.identity] = session
        try:
            with self.state.pushing(device.identity, session.push):
                for resource in self.state.unacknowledged(device):
                    session.push(resource)
                await self._loop(reader, session, keepalive)
        finally:
            if self._sessions.get(device.identity) is session:
                del self._sessions[device.identity]

    async def _loop(
        self, reader: asyncio.StreamReader, session: _Session, keepalive: float | None
    ) -> None:
        while True:
            async with asyncio.timeout(keepalive):
                packet = await codec.read_packet(reader, self.max_packet)
            kind = packet.type
            if kind == codec.PUBLISH:
                self._publish(session, codec.decode_publish(packet))
            elif kind == codec.PUBACK:
                session.inflight.pop(codec.decode_packet_id(packet), None)
            elif kind == codec.PINGREQ:
                session.send(codec.encode_pingresp())
            elif kind == codec.SUBSCRIBE:
                sub = codec.decode_subscribe(packet)
                session.send(codec.encode_suback(sub.packet_id, [min(q, 1) for _, q in sub.topics]))
            elif kind == codec.UNSUBSCRIBE:
                session.send(codec.encode_unsuback(codec.decode_unsubscribe(packet).packet_id))
            elif kind == codec.DISCONNECT:
                return
            else:
                raise _Close(f"unexpected packet type {kind}")
            await session.writer.drain()

    # ----- device publishes ---------------------------------------------------------------------

    def _publish(self, session: _Session, publish: codec.Publish) -> None:
        if publish.qos == 2:
            raise _Close("QoS 2 is not supported")
        topic = publish.topic
        device = session.device
        if device is None:
            if not topic.startswith(PROVISION_PREFIX):
                raise _Close("anonymous clients may only publish $provision/<identity>")
            identity = topic[len(PROVISION_PREFIX) :]
            token = self._provision(identity)
            if token is not None:
                session.send(codec.encode_publish(topic, token.encode("ascii")))
                if publish.packet_id is not None:
                    session.send(codec.encode_puback(publish.packet_id))
                raise _Provisioned(self.state.device(identity))
        elif topic.startswith(RESOURCE_PREFIX) and "/" not in topic[len(RESOURCE_PREFIX) :]:
            alias = topic[len(RESOURCE_PREFIX) :]
            value = publish.payload.decode("utf-8", "surrogateescape")
            self.state.device_write(device, [(alias, value)], via="mqtt")
        elif topic == BATCH_TOPIC:
            self._batch(device, publish.payload)
        else:
            log.debug("ignoring a publish on %r from %s", topic, device.identity)
        if publish.qos == 1 and self.faults.take_unconfirmed():
            raise _Close("fault: publish stored, connection cut before the PUBACK")
        if publish.qos == 1:
            assert publish.packet_id is not None
            session.send(codec.encode_puback(publish.packet_id))

    def _provision(self, identity: str) -> str | None:
        try:
            return self.state.activate(identity)
        except ProvisioningError as exc:
            log.info("MQTT activation refused: %s", exc)
            return None

    def _batch(self, device: Device, payload: bytes) -> None:
        try:
            points = parse_batch(payload, self.state.clock())
        except ValueError as exc:
            log.warning("dropping a malformed $resource.batch from %s: %s", device.identity, exc)
            self.rejected.append(BatchRejection(device.identity, str(exc)))
            return
        self.state.device_record(device, points, via="mqtt-batch")


def parse_batch(payload: bytes, now: float) -> list[tuple[str, float, str]]:
    """``$resource.batch`` → (alias, Unix seconds, value) points; ValueError when malformed."""
    try:
        doc: Any = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        raise ValueError("not a JSON array")
    points = []
    for entry in doc:
        if not isinstance(entry, dict) or not isinstance(entry.get("values"), dict):
            raise ValueError("an entry lacks a values object")
        ts = entry.get("timestamp", now)
        if isinstance(ts, bool) or not isinstance(ts, int | float):
            raise ValueError("a timestamp is not a number")
        seconds = float(ts) if ts < SECONDS_LIMIT else ts / 1_000_000
        for alias, value in entry["values"].items():
            text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            points.append((str(alias), seconds, text))
    return points
