"""The MQTT device channel: one device's MQTT 3.1.1 session with a Murano IoT Connector.

Murano's MQTT device API (murano-device-api.md §1.5, §1.6, §3):

- CONNECT with client id `""`; token mode: user name `""`, password = token; certificate mode: the
  TLS client certificate, no user name or password. TLS (`mqtts://`, port 8883) unless the
  configuration says `insecure` and the URL is `mqtt://`.
- Values the cloud sets arrive on `$resource/<alias>/<µs timestamp>` with no SUBSCRIBE (Murano's
  subscriptions are implicit), payload = the raw value. Values set while offline are replayed on
  reconnect: a value already yielded (same alias, timestamp and bytes) is not yielded again.
- Writes: PUBLISH `$resource/<alias>` QoS 1, complete on PUBACK; timestamped backlog:
  `$resource.batch` = `[{"timestamp": <µs>, "values": {alias: value}}]`. Murano's own client
  (murano-client) sends microseconds there and so do we; the local connector accepts s or µs.
- CONNACK 4 or 5 (bad token / not authorised) is final: state AUTH_FAILED, no reconnect. Anything
  else (TCP refused, TLS failure, connection lost, keepalive) reconnects after an exponential
  backoff with full jitter (`otatui.murano.backoff`), visible as state BACKOFF with reason and the
  time of the next attempt. A connection that stayed up `stable_after` seconds resets the backoff;
  one that drops at once (a connector that accepts and kicks) keeps backing off.

Payload bytes become `ResourceValue.raw` decoded as UTF-8 with `surrogateescape`, and writes encode
the same way, so acknowledging a value echoes the exact bytes received even if they are not UTF-8.

No thread per device: everything runs on the asyncio loop (see `mqtt_connection`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence

from otatui.murano.backoff import Backoff
from otatui.murano.channel import (
    AuthError,
    ChannelError,
    ChannelState,
    LinkState,
    NotConnected,
    ResourceValue,
    StateCallback,
    TimedValue,
)
from otatui.murano.mqtt_connection import MqttConnection
from otatui.murano.mqtt_socket import MqttEndpoint, tls_context

log = logging.getLogger(__name__)

RESOURCE_PREFIX = "$resource/"
BATCH_TOPIC = "$resource.batch"
_ENCODING = ("utf-8", "surrogateescape")
_SEEN_LIMIT = 512  # remembered deliveries for de-duplication (hashes, not values)


def encode(value: str) -> bytes:
    return value.encode(*_ENCODING)


def _check_alias(alias: str) -> None:
    if not alias or any(c in alias for c in "/+#\0"):
        raise ChannelError(f"invalid resource alias {alias!r}")


def batch_payload(records: Sequence[TimedValue]) -> bytes:
    """`$resource.batch` JSON: one entry per timestamp (µs), an alias at most once per entry."""
    entries: list[dict[str, object]] = []
    current: dict[str, str] = {}
    current_ts: int | None = None
    for record in records:
        _check_alias(record.alias)
        ts = round(record.timestamp * 1_000_000)
        if ts != current_ts or record.alias in current:
            current = {}
            current_ts = ts
            entries.append({"timestamp": ts, "values": current})
        current[record.alias] = record.value
    return json.dumps(entries, ensure_ascii=False, separators=(",", ":")).encode(*_ENCODING)


class _Values:
    def __init__(self, channel: MqttChannel) -> None:
        self._channel = channel

    def __aiter__(self) -> _Values:
        return self

    async def __anext__(self) -> ResourceValue:
        queue = self._channel._queue
        while True:
            if self._channel._ended and queue.empty():
                queue.put_nowait(None)  # wakes any other iteration, which ends as well
                if self._channel._auth_error is not None:
                    raise self._channel._auth_error
                raise StopAsyncIteration
            item = await queue.get()
            if item is not None:
                return item


class MqttChannel:
    """One device's MQTT channel (implements `otatui.murano.channel.Channel`)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        cert_file: str | None = None,
        key_file: str | None = None,
        ca_file: str | None = None,
        insecure: bool = False,
        on_state: StateCallback | None = None,
        keepalive: int = 60,
        backoff: Backoff | None = None,
        stable_after: float = 30.0,
        connect_timeout: float = 15.0,
        ack_timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._endpoint = MqttEndpoint.parse(url, insecure=insecure)
        if (token is None) == (cert_file is None):
            raise ChannelError("an MQTT channel needs either a token or a client certificate")
        if cert_file is not None and not self._endpoint.tls:
            raise ChannelError("a client certificate needs an mqtts:// URL")
        if token is not None and not token:
            raise ChannelError("the device token is empty")
        self._token = token
        self._context: ssl.SSLContext | None = None
        if self._endpoint.tls:
            self._context = ssl_context or tls_context(ca_file, cert_file, key_file)
        self._on_state = on_state
        self._keepalive = keepalive
        self._backoff = (backoff or Backoff()).fresh()
        self._stable_after = stable_after
        self._connect_timeout = connect_timeout
        self._ack_timeout = ack_timeout
        self._state = ChannelState(LinkState.STOPPED, "not started")
        self._queue: asyncio.Queue[ResourceValue | None] = asyncio.Queue()
        self._seen: OrderedDict[tuple[str, int, bytes], None] = OrderedDict()
        self._conn: MqttConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._ended = False
        self._auth_error: AuthError | None = None
        self.connects = 0  # connection attempts made (CONNECT sent or tried)

    def __repr__(self) -> str:
        mode = "token" if self._token is not None else "certificate"
        return f"<MqttChannel {self._endpoint} {mode} {self._state.state.value}>"

    @property
    def protocol(self) -> str:
        return "mqtt"

    @property
    def state(self) -> ChannelState:
        return self._state

    async def start(self) -> None:
        if self._task is None and not self._ended:
            self._task = asyncio.create_task(self._run(), name=f"mqtt {self._endpoint}")

    async def close(self) -> None:
        self._ended = True
        task, self._task = self._task, None
        try:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        finally:  # also when our caller is cancelled meanwhile: values() must end
            self._drop_connection("closed")
            if self._state.state != LinkState.AUTH_FAILED:
                self._set_state(ChannelState(LinkState.STOPPED, "closed"))
            self._queue.put_nowait(None)

    def values(self) -> AsyncIterator[ResourceValue]:
        """Values set by the cloud, in arrival order. Ends when the channel is closed; raises
        `AuthError` if the connector refused the credentials. Cancelling a pending `anext()`
        (e.g. `asyncio.wait_for` timing out) loses nothing and leaves the iterator usable."""
        return _Values(self)

    async def write(self, alias: str, value: str) -> None:
        _check_alias(alias)
        await self._publish(RESOURCE_PREFIX + alias, encode(value))

    async def acknowledge(self, value: ResourceValue) -> None:
        await self.write(value.alias, value.raw)

    async def write_batch(self, records: Sequence[TimedValue]) -> None:
        if records:
            await self._publish(BATCH_TOPIC, batch_payload(records))

    # -- internals -------------------------------------------------------------------------

    async def _publish(self, topic: str, payload: bytes) -> None:
        conn = self._conn
        if conn is None or not conn.connected:
            raise NotConnected(f"not connected to {self._endpoint} ({self._state.state.value})")
        await conn.publish(topic, payload, within=self._ack_timeout)

    def _set_state(self, state: ChannelState) -> None:
        self._state = state
        log.debug("%s: %s %s", self._endpoint, state.state.value, state.reason)
        if self._on_state is not None:
            try:
                self._on_state(state)
            except Exception:
                log.exception("on_state callback failed")

    def _drop_connection(self, reason: str) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close(reason)

    def _message(self, topic: str, payload: bytes) -> None:
        if not topic.startswith(RESOURCE_PREFIX):
            log.debug("%s: ignored a message on %s", self._endpoint, topic)
            return
        rest = topic[len(RESOURCE_PREFIX) :]
        alias, _, suffix = rest.rpartition("/")
        if not alias or not suffix.isdigit():
            alias, micros = rest, None
        else:
            micros = int(suffix)
        if micros is not None:
            key = (alias, micros, hashlib.blake2b(payload, digest_size=16).digest())
            if key in self._seen:
                log.debug("%s: %s at %d delivered again, ignored", self._endpoint, alias, micros)
                return
            self._seen[key] = None
            if len(self._seen) > _SEEN_LIMIT:
                self._seen.popitem(last=False)
        raw = payload.decode(*_ENCODING)
        stamp = micros / 1_000_000 if micros is not None else None
        self._queue.put_nowait(ResourceValue(alias, raw, stamp, "mqtt"))

    async def _run(self) -> None:
        backoff = self._backoff
        while not self._ended:
            attempt = backoff.attempt
            self._set_state(ChannelState(LinkState.CONNECTING, str(self._endpoint), None, attempt))
            conn = MqttConnection(
                self._endpoint,
                password=self._token,
                context=self._context,
                keepalive=self._keepalive,
                on_message=self._message,
            )
            self.connects += 1
            try:
                await conn.open(within=self._connect_timeout)
            except AuthError as exc:
                self._auth_error = exc
                self._ended = True
                self._set_state(ChannelState(LinkState.AUTH_FAILED, str(exc), None, attempt + 1))
                self._queue.put_nowait(None)
                return
            except ChannelError as exc:
                reason = str(exc)
            except Exception as exc:  # a bug must not end the channel silently: retry, say so
                log.exception("MQTT connection to %s failed unexpectedly", self._endpoint)
                reason = f"connection failed: {type(exc).__name__}"
            else:
                self._conn = conn
                up_since = time.monotonic()
                self._set_state(ChannelState(LinkState.CONNECTED, str(self._endpoint)))
                reason = await conn.closed
                self._conn = None
                if time.monotonic() - up_since >= self._stable_after:
                    backoff.reset()  # it was a working connection, not a flapping one
            delay = backoff.next_delay()
            retry_at = time.time() + delay
            self._set_state(ChannelState(LinkState.BACKOFF, reason, retry_at, backoff.attempt))
            await asyncio.sleep(delay)


async def provision_mqtt(
    url: str,
    identity: str,
    *,
    ca_file: str | None = None,
    insecure: bool = False,
    timeout: float = 30.0,  # noqa: ASYNC109 - the bound is part of the error message
) -> str:
    """Activate `identity` over MQTT (§1.6) and return its token.

    Connects anonymously, publishes an empty `$provision/<identity>` (QoS 1) and waits for the
    connector's reply on a `$provision…` topic, whose payload is the token. Murano does not answer
    at all for an identity already provisioned or not whitelisted, hence the bound."""
    endpoint = MqttEndpoint.parse(url, insecure=insecure)
    if not identity or any(c in identity for c in "/+#\0"):
        raise ChannelError(f"invalid device identity {identity!r}")
    context = tls_context(ca_file) if endpoint.tls else None
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[bytes] = loop.create_future()

    def on_message(topic: str, payload: bytes) -> None:
        if topic.startswith("$provision") and not reply.done():
            reply.set_result(payload)

    conn = MqttConnection(
        endpoint, password=None, context=context, keepalive=60, on_message=on_message
    )
    topic = f"$provision/{identity}"
    try:
        async with asyncio.timeout(timeout):
            try:
                await conn.open(within=timeout)
            except AuthError as exc:
                raise ChannelError(
                    f"anonymous connection for provisioning refused: {exc}"
                ) from None
            conn.publish_nowait(topic, b"")
            await asyncio.wait((reply, conn.closed), return_when=asyncio.FIRST_COMPLETED)
    except TimeoutError:
        raise ChannelError(
            f"no reply to {topic} within {timeout:g} s (already provisioned or not whitelisted?)"
        ) from None
    finally:
        conn.close()
    if not reply.done():
        raise ChannelError(f"{endpoint} closed the connection before answering {topic}")
    token = reply.result().decode("utf-8", "replace").strip()
    if not token:
        raise ChannelError(f"{endpoint} answered {topic} with an empty token")
    return token
