"""The local Murano-compatible connector: listeners around one state, content area and faults.

``async with Connector(...) as c:`` starts the HTTP device API (and, when asked, MQTT, TLS
variants of both, and the loopback control endpoint); port 0 picks a free port, the bound ports
and URLs are attributes afterwards. :func:`serve_forever` is what ``otatui connector`` runs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType

from .application import Application
from .content import ContentStore
from .control import ControlHttpApi, is_loopback
from .faults import Faults
from .http_api import DeviceHttpApi
from .http_server import HttpServer
from .mqtt_broker import MqttBroker
from .state import ConnectorState

log = logging.getLogger(__name__)

MAX_DEVICE_REQUEST_BODY = 4 * 1024 * 1024  # Murano caps one value at 1 MiB; a record holds several
MAX_CONTROL_REQUEST_BODY = 64 * 1024 * 1024  # uploads in the body; bigger files: PUT ?path=


def tls_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server TLS context from a PEM certificate (chain) and key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


def _is_wildcard(host: str) -> bool:
    try:
        return not host or ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


class Connector(Application):
    """Murano device API (HTTP, optionally MQTT and TLS) served by this process."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        http_port: int | None = 0,
        mqtt_port: int | None = 0,
        https_port: int | None = None,
        mqtts_port: int | None = None,
        control_port: int | None = None,
        control_host: str = "127.0.0.1",
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        data_dir: Path | None = None,
        devices: Iterable[tuple[str, str | None]] = (),
        allow_any_identity: bool = False,
    ) -> None:
        if (https_port is not None or mqtts_port is not None) and not (tls_cert and tls_key):
            raise ValueError("a TLS listener needs tls_cert and tls_key")
        if not is_loopback(control_host):
            raise ValueError(f"the control endpoint must be on loopback, not {control_host!r}")
        self._tls = tls_context(tls_cert, tls_key) if tls_cert and tls_key else None
        state = ConnectorState(
            data_dir / "state" if data_dir is not None else None,
            allow_any_identity=allow_any_identity,
        )
        content = ContentStore(data_dir / "content" if data_dir is not None else None)
        super().__init__(state, content, Faults())
        for identity, token in devices:
            self.add_device(identity, token)
        self.host = host
        self.control_host = control_host
        self._ports: dict[str, int | None] = {
            "http": http_port,
            "https": https_port,
            "mqtt": mqtt_port,
            "mqtts": mqtts_port,
            "control": control_port,
        }
        self.http = HttpServer(
            DeviceHttpApi(state, content, self.faults), max_body=MAX_DEVICE_REQUEST_BODY
        )
        self._control_urls: dict[str, str] = {}
        self.control = HttpServer(
            ControlHttpApi(self, self._control_urls),
            server_name="otatui-connector",
            max_body=MAX_CONTROL_REQUEST_BODY,
        )
        self.mqtt = MqttBroker(state, faults=self.faults)  # it applies unconfirmed_writes
        self.kicker = self.mqtt
        self._servers: list[asyncio.Server] = []
        self.ports: dict[str, int] = {}

    # ----- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            if self._ports["http"] is not None:
                await self._listen("http", self.http, None)
            if self._ports["https"] is not None:
                await self._listen("https", self.http, self._tls)
            if self._ports["mqtt"] is not None:
                await self._listen("mqtt", self.mqtt, None)
            if self._ports["mqtts"] is not None:
                await self._listen("mqtts", self.mqtt, self._tls)
            if self._ports["control"] is not None:
                await self._listen("control", self.control, None, self.control_host)
            self._control_urls.update(self.urls())
        except BaseException:
            await self.stop()
            raise

    async def _listen(
        self,
        name: str,
        callback: HttpServer | MqttBroker,
        tls: ssl.SSLContext | None,
        host: str | None = None,
    ) -> None:
        port = self._ports[name]
        assert port is not None
        server = await asyncio.start_server(
            callback, host or self.host, port, ssl=tls, backlog=2048, limit=256 * 1024
        )
        self._servers.append(server)
        self.ports[name] = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        await self.http.close_connections()
        await self.mqtt.close_connections()
        await self.control.close_connections()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        self.state.save()
        self.content.close()

    async def __aenter__(self) -> Connector:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ----- addresses ----------------------------------------------------------------------------

    def _url(self, scheme: str, name: str) -> str:
        if name not in self.ports:
            raise RuntimeError(f"the {name} listener is not running")
        host = self.control_host if name == "control" else self.host
        if _is_wildcard(host):
            host = "127.0.0.1"  # reachable from here; devices on the LAN use this host's address
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self.ports[name]}"

    def urls(self) -> dict[str, str]:
        """URL of every running listener, by name (``http_url``, ``mqtt_url``, ...)."""
        schemes = {"http": "http", "https": "https", "mqtt": "mqtt", "mqtts": "mqtts"}
        schemes["control"] = "http"
        return {f"{name}_url": self._url(schemes[name], name) for name in self.ports}

    @property
    def http_url(self) -> str:
        return self._url("http", "http")

    @property
    def https_url(self) -> str:
        return self._url("https", "https")

    @property
    def mqtt_url(self) -> str:
        return self._url("mqtt", "mqtt")

    @property
    def mqtts_url(self) -> str:
        return self._url("mqtts", "mqtts")

    @property
    def control_url(self) -> str:
        return self._url("http", "control")


async def serve_forever(
    *,
    host: str = "127.0.0.1",
    http_port: int | None = 8080,
    mqtt_port: int | None = 1883,
    https_port: int | None = None,
    mqtts_port: int | None = None,
    control_port: int | None = None,
    data_dir: Path | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    devices: Iterable[tuple[str, str | None]] = (),
    allow_any_identity: bool = False,
    ready: Callable[[Connector], None] | None = None,
) -> None:
    """Serve the connector until cancelled (``otatui connector``).

    A port of None leaves that listener off, 0 picks a free port. ``devices`` are (identity,
    token) pairs; a None token only whitelists the identity for activation. With ``data_dir``,
    devices, tokens, resources, reports and content survive a restart. ``ready`` is called once
    every listener is bound (e.g. to print ``connector.urls()``).
    """
    connector = Connector(
        host=host,
        http_port=http_port,
        mqtt_port=mqtt_port,
        https_port=https_port,
        mqtts_port=mqtts_port,
        control_port=control_port,
        tls_cert=tls_cert,
        tls_key=tls_key,
        data_dir=data_dir,
        devices=devices,
        allow_any_identity=allow_any_identity,
    )
    async with connector:
        log.info("local connector listening: %s", ", ".join(connector.urls().values()))
        if ready is not None:
            ready(connector)
        await asyncio.Event().wait()
