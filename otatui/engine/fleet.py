"""The fleet: every configured device's session in one asyncio loop.

One store, one shared HTTP pool, one downloader (bounded concurrent downloads, one cache) and one
install semaphore (bounded concurrent installs) serve all sessions; no thread per device. The
fleet builds each device's channel from the configuration (MQTT or HTTP long poll), provisions a
device that has no token yet (a transient failure of the activation, HTTP 5xx, a timeout or a
refused connection, is retried with the channels' backoff and shown as a `ConnectionChanged`
"backoff" with its reason and next attempt; only the connector's refusals, 403/404/409, are
final), and gives every session a link (`otatui.engine.link_builder`): the
install hook for an agent, the serial or LAN link of a bridge (LAN bridges share one local
connector the fleet serves while it runs), none for a monitor. Tests may pass `link_factory`.

While open, the fleet holds the data dir's lock (`otatui.store.lock`): one process at a time
sends a store's outbox (`otatui sync` refuses to run meanwhile).

Commands for the UI: `cancel(name)`, `retry(name)`, `apply(name)` (an update waiting for
confirmation, `apply = "confirm"`, goes on to its install or push).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import httpx

from otatui.config import Config, DeviceConfig, TokenError
from otatui.engine.events import ConnectionChanged, EventBus, SessionError
from otatui.engine.forwarding import OFFLINE_AFTER_S
from otatui.engine.link_builder import LinkBuilder
from otatui.engine.monitor import Monitor
from otatui.engine.outbox import BACKLOG_AGE_S, ReadCurrent
from otatui.engine.session import Session, SessionOptions
from otatui.links.link import Link
from otatui.murano.backoff import Backoff
from otatui.murano.channel import (
    AuthError,
    Channel,
    ChannelError,
    ChannelState,
    LinkState,
    StateCallback,
)
from otatui.murano.device_api import tls_context
from otatui.murano.http import HttpChannel, device_api_client
from otatui.murano.mqtt import MqttChannel
from otatui.murano.provisioning import ProvisioningError, activate
from otatui.otau.progress import ProgressPolicy
from otatui.store import Store
from otatui.store.lock import DataDirLock
from otatui.transfer import ContentAuth, Downloader

LinkFactory = Callable[[DeviceConfig], Link]
# The connector's refusals to activate an identity (`otatui.murano.provisioning`): final.
FINAL_ACTIVATION_STATUSES = frozenset({403, 404, 409})


class StateRelay:
    """An `on_state` callback whose target is set once the session exists."""

    def __init__(self) -> None:
        self.target: StateCallback | None = None
        self.last: ChannelState | None = None
        self.shown: ChannelState | None = None
        """The last state handed to the target (published as a `ConnectionChanged`)."""

    def __call__(self, state: ChannelState) -> None:
        self.last = state
        if self.target is not None:
            self.target(state)
            self.shown = state


@dataclass
class DeviceHandle:
    """What the fleet knows of one device (for status views and commands)."""

    config: DeviceConfig
    session: Session | None = None
    monitor: Monitor | None = None
    error: str = ""


class Fleet:
    """Builds and runs the sessions of a configuration. Use as an async context manager."""

    def __init__(
        self,
        config: Config,
        *,
        bus: EventBus | None = None,
        link_factory: LinkFactory | None = None,
        clock: Callable[[], float] = time.time,
        request_timeout_ms: int = 300_000,
        backlog_age: float = BACKLOG_AGE_S,
        offline_after: float = OFFLINE_AFTER_S,
        backoff: Backoff | None = None,
    ) -> None:
        self.config = config
        self.bus = bus or EventBus()
        self.links = LinkBuilder(config)
        self.link_factory: LinkFactory = link_factory or self.links
        self.offline_after = offline_after
        self.clock = clock
        self.request_timeout_ms = request_timeout_ms
        self.backlog_age = backlog_age
        self.backoff = backoff or Backoff()  # activation retries (each device its own copy)
        self.devices: dict[str, DeviceHandle] = {d.name: DeviceHandle(d) for d in config.devices}
        self.store: Store | None = None
        self.client: httpx.AsyncClient | None = None
        self.downloader: Downloader | None = None
        self._install_slots = asyncio.Semaphore(config.limits.concurrent_installs)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._lock = DataDirLock(config.locations.data_dir, "otatui run")

    # -- set-up --------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        paths = self.config.locations
        self._lock.acquire()
        try:
            self.store = Store.open(paths.db_path)
        except BaseException:
            self._lock.release()
            raise
        connector = self.config.connector
        ca_file = str(connector.ca_file) if connector.ca_file else None
        self.client = device_api_client(ca_file=ca_file)
        self.downloader = Downloader(
            self.client,
            self.store,
            paths.cache_dir,
            concurrency=self.config.limits.concurrent_downloads,
            ssl_context=tls_context(ca_file),  # https payloads take the fast path too
        )
        if self.link_factory is self.links:
            await self.links.start()  # a failure is each LAN bridge's error
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every session (reports stay in the outbox, partial downloads stay resumable)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        await self.links.aclose()
        if self.downloader is not None:
            await self.downloader.aclose()
        if self.client is not None:
            await self.client.aclose()
        if self.store is not None:
            self.store.close()
        self._lock.release()

    def start(self) -> None:
        """Start every device's session in the background."""
        for name in self.devices:
            self._tasks[name] = asyncio.create_task(self._run_device(name), name=f"device {name}")

    async def run(self) -> None:
        """Start every session and wait until all have ended (normally: until cancelled)."""
        self.start()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    # -- commands ------------------------------------------------------------------------------

    def session(self, name: str) -> Session:
        handle = self.devices.get(name)
        if handle is None or handle.session is None:
            raise LookupError(f"no running update session for device {name!r}")
        return handle.session

    def cancel(self, name: str, reason: str = "cancelled by the technician") -> None:
        self.session(name).cancel(reason)

    def retry(self, name: str) -> None:
        self.session(name).retry()

    def apply(self, name: str) -> bool:
        """Let the update waiting for confirmation go on; False when none is waiting."""
        return self.session(name).apply()

    # -- one device ----------------------------------------------------------------------------

    async def _run_device(self, name: str) -> None:
        handle = self.devices[name]
        device = handle.config
        relay = StateRelay()
        try:
            token = await self._token(device)
            if device.role == "monitor":
                handle.monitor = Monitor(
                    name=name,
                    channel=self._http_channel(token, relay),
                    store=self._store,
                    bus=self.bus,
                    clock=self.clock,
                )
                relay.target = handle.monitor.on_channel_state
                await handle.monitor.run()
                return
            channel = self._channel(device, token, relay)
            session = Session(
                SessionOptions(
                    name=name,
                    identity=device.identity,
                    role=device.role,
                    installed_version=device.installed_version or "unknown",
                    work_dir=self.config.locations.data_dir / "work" / _safe(name),
                    policy=ProgressPolicy(
                        min_interval=self.config.limits.progress_interval,
                        min_percent=float(self.config.limits.progress_percent),
                    ),
                    backlog_age=self.backlog_age,
                    apply=device.apply,
                    offline_after=self.offline_after if device.role == "bridge" else None,
                ),
                channel=channel,
                store=self._store,
                bus=self.bus,
                downloader=self._downloader,
                content_auth=ContentAuth(self.config.connector.base_url, token),
                link=self.link_factory(device),
                install_slots=self._install_slots,
                clock=self.clock,
                read_current=self._reader(channel, token),
            )
            handle.session = session
            relay.target = session.on_channel_state
            await session.run()
        except (ChannelError, TokenError, ValueError) as exc:
            self._ended(handle, exc, relay.shown)

    def _ended(self, handle: DeviceHandle, exc: Exception, shown: ChannelState | None) -> None:
        """A device's session ended on a final error: its last `ConnectionChanged` says how.

        `auth_failed` when the connector refused the token (`AuthError`), else `stopped`. When
        the channel itself already published that state with that reason (a refused token, as
        the channel reports it), nothing more is published: the technician reads the reason
        once, and the state that ended the device stays the last one.
        """
        reason = str(exc)
        handle.error = reason
        final = LinkState.AUTH_FAILED if isinstance(exc, AuthError) else LinkState.STOPPED
        if shown is not None and shown.state is final and shown.reason == reason:
            return
        name = handle.config.name
        self.bus.publish(SessionError(device=name, message=reason))
        self.bus.publish(
            ConnectionChanged(
                device=name, protocol=handle.config.protocol, state=final.value, reason=reason
            )
        )

    async def _token(self, device: DeviceConfig) -> str:
        if device.auth == "cert":
            raise ChannelError(
                f"device {device.name}: certificate authentication is not supported by the "
                "update engine yet; give the device a token"
            )
        token = device.token_value()
        if token:
            return token
        token = await self._activate(device)
        device.save_token(token)
        return token

    async def _activate(self, device: DeviceConfig) -> str:
        """Activate the device's identity, retrying transient failures until it works."""
        assert self.client is not None
        backoff = self.backoff.fresh()

        def state(state: LinkState, reason: str, retry_at: float | None = None) -> None:
            self.bus.publish(
                ConnectionChanged(
                    device=device.name,
                    protocol=device.protocol,
                    state=state.value,
                    reason=reason,
                    retry_at=retry_at,
                    attempt=backoff.attempt,
                )
            )

        state(LinkState.CONNECTING, f"activating identity {device.identity}")
        while True:
            try:
                return await activate(self.client, self.config.connector.base_url, device.identity)
            except ProvisioningError as exc:
                if exc.status in FINAL_ACTIVATION_STATUSES:
                    raise
                reason = str(exc)
            except ChannelError as exc:  # cannot reach the connector (refused, timed out)
                reason = str(exc)
            delay = backoff.next_delay()
            state(LinkState.BACKOFF, reason, self.clock() + delay)
            await asyncio.sleep(delay)

    def _channel(self, device: DeviceConfig, token: str, relay: StateRelay) -> Channel:
        connector = self.config.connector
        if device.protocol == "mqtt":
            if connector.mqtt_url is None:  # config validation makes this unreachable
                raise ChannelError(f"device {device.name}: no connector.mqtt_url configured")
            return MqttChannel(
                connector.mqtt_url,
                token,
                ca_file=str(connector.ca_file) if connector.ca_file else None,
                insecure=connector.insecure,
                on_state=relay,
            )
        return self._http_channel(token, relay)

    def _reader(self, channel: Channel, token: str) -> ReadCurrent:
        """Reads one of the device's resources on the connector over HTTP (an MQTT device
        too: the device API reads over HTTP with the same token)."""
        http = (
            channel
            if isinstance(channel, HttpChannel)
            else self._http_channel(token, StateRelay(), watch=())
        )

        async def read(alias: str) -> str | None:
            return (await http.read([alias])).get(alias)

        return read

    def _http_channel(
        self, token: str, relay: StateRelay, watch: tuple[str, ...] = ("config_otau",)
    ) -> HttpChannel:
        assert self.client is not None
        return HttpChannel(
            self.client,
            self.config.connector.base_url,
            token,
            watch=watch,
            on_state=relay,
            request_timeout_ms=self.request_timeout_ms,
        )

    @property
    def _store(self) -> Store:
        if self.store is None:
            raise RuntimeError("the fleet is not open (use 'async with Fleet(...)')")
        return self.store

    @property
    def _downloader(self) -> Downloader:
        if self.downloader is None:
            raise RuntimeError("the fleet is not open (use 'async with Fleet(...)')")
        return self.downloader


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".") or "device"
