"""Where and how an MQTT channel connects: the `mqtts://` URL rules, the TLS context, and a TCP
connection plus TLS handshake made without blocking the event loop.

The handshake is stepped by hand (`do_handshake()` on a non-blocking `ssl.SSLSocket`, waiting for
readiness with `add_reader`/`add_writer`) because paho needs a real socket object, which asyncio's
own TLS transports do not provide. Host names are resolved with `loop.getaddrinfo` (the loop's
bounded default executor); IP literals need no lookup at all.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from otatui.murano.channel import ChannelError


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    """Where to connect: host, port and whether TLS is used."""

    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str, *, insecure: bool = False) -> MqttEndpoint:
        """`mqtts://host[:8883]` (TLS) or, only with `insecure`, `mqtt://host[:1883]`."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ChannelError(f"invalid MQTT URL {url!r}: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("mqtts", "mqtt") or not parts.hostname:
            raise ChannelError(f"invalid MQTT URL {url!r}: expected mqtts://host[:port]")
        if parts.username or parts.password:
            raise ChannelError("the MQTT URL must not carry credentials")
        if scheme == "mqtt" and not insecure:
            raise ChannelError(
                f"plain {url!r} is not encrypted: use mqtts:// or set insecure = true"
            )
        tls = scheme == "mqtts"
        return cls(parts.hostname, port or (8883 if tls else 1883), tls)

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


@functools.lru_cache(maxsize=16)
def _shared_context(ca_file: str | None) -> ssl.SSLContext:
    # One context per CA file for all devices without a client certificate: loading the system
    # CA store costs memory and time, so 1,000 channels share it.
    return ssl.create_default_context(cafile=ca_file)


def tls_context(
    ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
) -> ssl.SSLContext:
    """A client context that verifies the server certificate and host name (system CAs or
    `ca_file`), with the device's client certificate when given."""
    try:
        if cert_file is None:
            return _shared_context(ca_file)
        ctx = ssl.create_default_context(cafile=ca_file)
        ctx.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ChannelError(f"cannot load TLS files: {exc}") from None
    return ctx


async def _ready(fd: int, *, write: bool) -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not fut.done():
            fut.set_result(None)

    if write:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await fut
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


_DNS_TTL = 30.0
_resolved: dict[tuple[str, int], tuple[float, list[tuple[int, Any]]]] = {}
_resolving: dict[tuple[int, str, int], asyncio.Future[list[tuple[int, Any]]]] = {}


async def _addresses(host: str, port: int) -> list[tuple[int, Any]]:
    """Addresses to try. A host name is resolved once for all channels connecting at the same
    time and kept `_DNS_TTL` seconds, so a fleet reconnecting at once makes one lookup (one
    executor thread), not one per device."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, (host, port))]
    loop = asyncio.get_running_loop()
    cached = _resolved.get((host, port))
    if cached is not None and time.monotonic() - cached[0] < _DNS_TTL:
        return cached[1]
    key = (id(loop), host, port)
    pending = _resolving.get(key)
    if pending is None:
        pending = loop.create_future()
        _resolving[key] = pending
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except BaseException as exc:
            shared = exc if isinstance(exc, Exception) else OSError("name lookup interrupted")
            pending.set_exception(shared)
            pending.exception()  # mark it retrieved: waiters re-raise it, or nobody waits
            raise
        else:
            found: list[tuple[int, Any]] = [(f, addr) for f, _t, _p, _c, addr in infos]
            _resolved[(host, port)] = (time.monotonic(), found)
            pending.set_result(found)
            return found
        finally:
            del _resolving[key]
    return await asyncio.shield(pending)


async def open_socket(
    endpoint: MqttEndpoint, context: ssl.SSLContext | None
) -> socket.socket | ssl.SSLSocket:
    """TCP connect and TLS handshake without blocking the loop; the caller bounds the time."""
    loop = asyncio.get_running_loop()
    try:
        addresses = await _addresses(endpoint.host, endpoint.port)
    except OSError as exc:
        raise ChannelError(f"cannot resolve {endpoint.host}: {exc.strerror or exc}") from None
    error: OSError | None = None
    for family, addr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, addr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        break
    else:
        why = (error.strerror or str(error)) if error else "no address"
        raise ChannelError(f"cannot connect to {endpoint}: {why}")
    if context is None:
        return sock
    try:
        tls = context.wrap_socket(
            sock, server_hostname=endpoint.host, do_handshake_on_connect=False
        )
    except BaseException:
        sock.close()
        raise
    try:
        while True:
            try:
                tls.do_handshake()
                return tls
            except ssl.SSLWantReadError:
                await _ready(tls.fileno(), write=False)
            except ssl.SSLWantWriteError:
                await _ready(tls.fileno(), write=True)
    except ssl.SSLCertVerificationError as exc:
        tls.close()
        raise ChannelError(
            f"TLS certificate of {endpoint} not trusted: {exc.verify_message}"
        ) from None
    except (ssl.SSLError, OSError) as exc:
        tls.close()
        raise ChannelError(f"TLS handshake with {endpoint} failed: {exc}") from None
    except BaseException:
        tls.close()
        raise
