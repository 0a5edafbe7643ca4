"""One MQTT 3.1.1 connection to a Murano IoT Connector, driven by the asyncio loop (no thread).

paho-mqtt does the MQTT part (packets, keepalive, QoS 1 bookkeeping) through its "external event
loop" API: `loop_read`, `loop_write` and `loop_misc` are called from `loop.add_reader`,
`loop.add_writer` and a `call_later` timer, never `loop()`/`loop_start()` (they use `select()`,
which fails silently past 1023 file descriptors, and a thread per client).

paho's `connect()` would block on DNS, TCP and the TLS handshake. Instead the socket is opened
without blocking by `mqtt_socket.open_socket` and handed to paho: `_HandedSocketClient` overrides
paho's socket factory `_create_socket` (a private method of paho 2.x; the pinned range is 2.x) so
that `reconnect()` takes that socket and sends CONNECT on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from otatui.murano.channel import AuthError, ChannelError
from otatui.murano.mqtt_socket import MqttEndpoint, open_socket

log = logging.getLogger(__name__)

MessageCallback = Callable[[str, bytes], None]

# MQTT 3.1.1 CONNACK return codes, by the names paho gives them in its v2 callbacks.
_CONNACK_CODES = {
    "Success": 0,
    "Unsupported protocol version": 1,
    "Client identifier not valid": 2,
    "Server unavailable": 3,
    "Bad user name or password": 4,
    "Not authorized": 5,
}
_CONNACK_TEXT = {
    1: "unsupported protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
AUTH_REFUSALS = frozenset({4, 5})


if not callable(getattr(paho.Client, "_create_socket", None)):  # pragma: no cover
    raise ImportError("this paho-mqtt has no Client._create_socket: otatui needs paho-mqtt 2.x")


class _HandedSocketClient(paho.Client):
    """A paho client whose `reconnect()` uses a socket opened by us (see the module docstring)."""

    handed: socket.socket | ssl.SSLSocket | None = None

    def _create_socket(self) -> socket.socket | ssl.SSLSocket:
        sock, self.handed = self.handed, None
        if sock is None:
            raise ConnectionError("no socket was handed to the MQTT client")
        return sock


def _reason_text(rc: MQTTErrorCode | int) -> str:
    if rc == MQTTErrorCode.MQTT_ERR_KEEPALIVE:
        return "no answer from the connector within the keepalive"
    if rc in (MQTTErrorCode.MQTT_ERR_CONN_LOST, MQTTErrorCode.MQTT_ERR_NO_CONN):
        return "connection lost"
    return f"connection closed ({paho.error_string(rc).rstrip('.').lower()})"


class MqttConnection:
    """One connection attempt and, once accepted, the live session it carries.

    `open()` connects and waits for CONNACK; `publish()` waits for PUBACK; `closed` resolves with a
    reason when the connection ends, whoever ended it. Not reusable: make a new one to reconnect.
    """

    def __init__(
        self,
        endpoint: MqttEndpoint,
        *,
        password: str | None,
        context: ssl.SSLContext | None,
        keepalive: int,
        on_message: MessageCallback,
    ) -> None:
        self.endpoint = endpoint
        self._context = context
        self._keepalive = keepalive
        self._on_message = on_message
        self._loop = asyncio.get_running_loop()
        client = _HandedSocketClient(
            CallbackAPIVersion.VERSION2,
            client_id="",  # Murano: always empty (its auth binds the device, §1.5)
            clean_session=True,  # paho requires it with an empty client id; Murano ignores it
            protocol=paho.MQTTv311,
            # No reconnect of paho's own: a refused CONNACK (protocol version, client id) ends here.
            reconnect_on_failure=False,
        )
        if password is not None:
            client.username_pw_set("", password)
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_message = self._message
        client.on_publish = self._published
        client.on_socket_open = self._socket_open
        client.on_socket_close = self._socket_close
        client.on_socket_register_write = self._register_write
        client.on_socket_unregister_write = self._unregister_write
        self._client = client
        self._fd = -1
        self._connack: asyncio.Future[int] = self._loop.create_future()
        self.closed: asyncio.Future[str] = self._loop.create_future()
        self._reason = ""
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._misc: asyncio.TimerHandle | None = None
        self.connected = False

    def __repr__(self) -> str:
        return f"<MqttConnection {self.endpoint} connected={self.connected}>"

    async def open(self, within: float) -> None:
        """Connect and wait for CONNACK. Raises AuthError on CONNACK 4/5, ChannelError otherwise."""
        try:
            async with asyncio.timeout(within):
                sock = await open_socket(self.endpoint, self._context)
                self._client.connect_async(self.endpoint.host, self.endpoint.port, self._keepalive)
                self._client.handed = sock
                rc = self._client.reconnect()
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    raise ChannelError(
                        f"cannot send CONNECT to {self.endpoint}: {_reason_text(rc)}"
                    )
                self._schedule_misc()
                done, _ = await asyncio.wait(
                    (self._connack, self.closed), return_when=asyncio.FIRST_COMPLETED
                )
        except TimeoutError:
            self.close()
            raise ChannelError(f"no answer from {self.endpoint} within {within:g} s") from None
        except BaseException:
            self.close()
            raise
        if self._connack not in done:
            self.close()
            raise ChannelError(f"{self.endpoint} closed the connection before CONNACK")
        code = self._connack.result()
        if code == 0:
            self.connected = True
            return
        self.close()
        text = _CONNACK_TEXT.get(code, "refused")
        if code in AUTH_REFUSALS:
            raise AuthError(f"{self.endpoint} refused the device token (CONNACK {code}: {text})")
        raise ChannelError(f"{self.endpoint} refused the connection (CONNACK {code}: {text})")

    async def publish(self, topic: str, payload: bytes, within: float) -> None:
        """PUBLISH with QoS 1 and wait for PUBACK."""
        if self.closed.done() or not self.connected:
            raise ChannelError(f"not connected to {self.endpoint}")
        info = self._client.publish(topic, payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ChannelError(f"cannot publish to {self.endpoint}: {_reason_text(info.rc)}")
        fut: asyncio.Future[None] = self._loop.create_future()
        self._pending[info.mid] = fut
        try:
            async with asyncio.timeout(within):
                await fut
        except TimeoutError:
            raise ChannelError(f"no PUBACK from {self.endpoint} within {within:g} s") from None
        finally:
            if self._pending.get(info.mid) is fut:
                del self._pending[info.mid]

    def publish_nowait(self, topic: str, payload: bytes) -> None:
        """PUBLISH with QoS 1, not waiting for PUBACK (provisioning: the reply may come first)."""
        info = self._client.publish(topic, payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ChannelError(f"cannot publish to {self.endpoint}: {_reason_text(info.rc)}")

    def close(self, reason: str = "closed") -> None:
        """Send DISCONNECT if possible, then close the socket (idempotent)."""
        if self._client.socket() is not None:
            if self.connected:
                with contextlib.suppress(Exception):
                    self._reason = self._reason or reason
                    self._client.disconnect()
                    self._client.loop_write()  # DISCONNECT is tiny: sent at once, then closed
            if self._client.socket() is not None:
                self._reason = self._reason or reason
                with contextlib.suppress(OSError):
                    self._client._sock_close()  # paho's own close: runs our socket-close hook
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None
        self._finish(reason)

    # -- paho callbacks (all run on the loop's thread) -------------------------------------

    def _connected(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        code = _CONNACK_CODES.get(reason.getName(), reason.value)
        if not self._connack.done():
            self._connack.set_result(code)

    def _disconnected(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        # For MQTT 3.1.1 paho passes the MQTTErrorCode converted to a reason code; keep the
        # first reason we learn (an explicit close sets its own).
        if not self._reason:
            name = reason.getName()
            self._reason = {
                "Keep alive timeout": "no answer from the connector within the keepalive",
                "Protocol error": "connection closed after a protocol error",
                "Success": "disconnected",
            }.get(name, "connection lost")

    def _message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            log.warning("ignored a message with a non-UTF-8 topic from %s", self.endpoint)
            return
        try:
            self._on_message(topic, bytes(message.payload))
        except Exception:
            log.exception("message handler failed for %s", topic)

    def _published(self, _c: Any, _u: Any, mid: int, _reason: Any, _props: Any) -> None:
        fut = self._pending.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _socket_open(self, _c: Any, _u: Any, sock: Any) -> None:
        self._fd = sock.fileno()
        self._loop.add_reader(self._fd, self._readable)

    def _socket_close(self, _c: Any, _u: Any, _sock: Any) -> None:
        if self._loop.is_closed():  # paho's __del__ closing a socket nobody closed
            self.connected = False
            return
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
            self._fd = -1
        self.connected = False
        # paho reports why (on_disconnect) right after closing: settle on the next tick.
        self._loop.call_soon(self._finish, "connection lost")

    def _register_write(self, _c: Any, _u: Any, _sock: Any) -> None:
        if self._fd >= 0:
            self._loop.add_writer(self._fd, self._writable)

    def _unregister_write(self, _c: Any, _u: Any, _sock: Any) -> None:
        if self._fd >= 0:
            self._loop.remove_writer(self._fd)

    # -- loop hooks ------------------------------------------------------------------------

    def _readable(self) -> None:
        client = self._client
        rc = client.loop_read()
        # TLS may hold decrypted bytes the kernel no longer signals: drain them now.
        sock = client.socket()
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and isinstance(sock, ssl.SSLSocket):
            if not sock.pending():
                break
            rc = client.loop_read()
            sock = client.socket()

    def _writable(self) -> None:
        self._client.loop_write()

    def _schedule_misc(self) -> None:
        interval = max(0.5, min(5.0, self._keepalive / 10))
        self._misc = self._loop.call_later(interval, self._tick, interval)

    def _tick(self, interval: float) -> None:
        if self._client.socket() is None:
            self._misc = None
            return
        self._client.loop_misc()  # keepalive PINGREQ, and a dead peer detected
        self._misc = self._loop.call_later(interval, self._tick, interval)

    def _finish(self, reason: str) -> None:
        self.connected = False
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None
        why = self._reason or reason
        if self._pending:
            error = ChannelError(f"write not confirmed by {self.endpoint}: {why}")
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(error)
            self._pending.clear()
        if not self.closed.done():
            self.closed.set_result(why)
