"""Helpers for tests against the local connector: a paho device in a thread, a raw MQTT peer,
and a throw-away TLS certificate."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import subprocess
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from otatui.connector import Connector
from otatui.connector import mqtt_codec as codec


def self_signed(
    directory: Path, common_name: str, *, stem: str, alt_names: str | None = None
) -> tuple[Path, Path]:
    """A self-signed EC certificate (its own CA) and its key, `<stem>.pem` and `<stem>.key`."""
    cert, key = directory / f"{stem}.pem", directory / f"{stem}.key"
    extra = ["-addext", f"subjectAltName={alt_names}"] if alt_names else []
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={common_name}",
            *extra,
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed server certificate for 127.0.0.1/localhost (it is its own CA)."""
    return self_signed(directory, "localhost", stem="cert", alt_names="IP:127.0.0.1,DNS:localhost")


def tls_connector(cert: tuple[Path, Path], **options: Any) -> Connector:
    """A connector listening only on HTTPS and MQTTS (free ports), with this certificate/key."""
    return Connector(
        http_port=None,
        mqtt_port=None,
        https_port=0,
        mqtts_port=0,
        tls_cert=cert[0],
        tls_key=cert[1],
        **options,
    )


class PahoDevice:
    """A device speaking MQTT through paho-mqtt 2.x (its own network thread), as Exosite's do."""

    def __init__(
        self,
        port: int,
        token: str | None = None,
        *,
        client_id: str = "",
        keepalive: int = 60,
        ca_file: Path | None = None,
    ) -> None:
        self.port = port
        self.keepalive = keepalive
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
        )
        if token is not None:
            self.client.username_pw_set("", token)
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file))
        self.client.reconnect_delay_set(min_delay=0.05, max_delay=0.2)
        self.connacks: queue.Queue[Any] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.disconnects: queue.Queue[Any] = queue.Queue()
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.connacks.put(rc)
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, m.payload))
        self.client.on_disconnect = lambda _c, _u, _f, rc, _p: self.disconnects.put(rc)

    async def start(self) -> Any:
        """Connect, start the network thread, return the CONNACK reason code."""
        await asyncio.to_thread(self.client.connect, "127.0.0.1", self.port, self.keepalive)
        self.client.loop_start()
        return await self.next(self.connacks)

    async def next(self, q: queue.Queue[Any], within: float = 5.0) -> Any:
        """The next item of one of paho's callback queues; queue.Empty after ``within`` s."""
        return await asyncio.to_thread(q.get, True, within)

    async def message(self, within: float = 5.0) -> tuple[str, bytes]:
        item: tuple[str, bytes] = await self.next(self.messages, within)
        return item

    async def no_message(self, wait: float = 0.5) -> None:
        try:
            item = await self.next(self.messages, wait)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message {item!r}")

    async def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        await asyncio.to_thread(info.wait_for_publish, 5)
        assert info.is_published()

    async def stop(self) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)


class RawMqtt:
    """A bare MQTT peer on asyncio streams, for checks paho would hide (bytes, closes, timing)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> RawMqtt:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def connect(
        self,
        token: str | None,
        *,
        client_id: str = "",
        keepalive: int = 60,
        level: int = 4,
    ) -> int:
        """Send CONNECT (token as password, empty username); return the CONNACK code."""
        self.send(
            codec.encode_connect(
                codec.Connect(
                    "MQTT",
                    level,
                    client_id,
                    True,
                    keepalive,
                    "" if token is not None else None,
                    token.encode() if token is not None else None,
                )
            )
        )
        packet = await self.read()
        assert packet.type == codec.CONNACK
        return codec.decode_connack(packet)[1]

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def read(self, within: float = 5.0) -> codec.Packet:
        async with asyncio.timeout(within):
            return await codec.read_packet(self.reader, 1 << 24)

    async def closed_by_peer(self, within: float = 5.0) -> bool:
        """True when the server closes the connection (EOF) within ``within`` s."""
        async with asyncio.timeout(within):
            try:
                data = await self.reader.read(1 << 16)
                while data:
                    data = await self.reader.read(1 << 16)
            except ConnectionError:
                pass
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
