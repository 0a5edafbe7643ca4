"""A simulated device that talks to a connector (Murano or the local one) over the device API.

`LanDevice` is what an unmodified device of ours does, in-process: it activates its identity
(over MQTT `$provision/<identity>` or HTTP `POST /provision/activate`) to get its token, or uses
a token given to it or kept in its folder from an earlier run; it connects with `MqttChannel` or
`HttpChannel` (`otatui.murano`); and it follows every `config_otau` value with the same
`otatui.otau.machine.UpdateMachine` the engine runs, so its `otau_in` reports are exactly those of
a real device of ours: INSTALLED_VERSION at boot, the acknowledgement (the identical value
written back) before anything else, INIT, TEST, TEST_STEP, TEST_SUCCESS, DOWNLOAD, DOWNLOAD_STEP,
DOWNLOAD_SUCCESS, INSTALL, INSTALL_STEP, INSTALL_SUCCESS, INSTALLED_VERSION, or the error status
of the step that failed. Files are downloaded with the `Downloader` (`otatui.transfer`): connector
content with the device's token (`ContentAuth`), external URLs without it; a `#sha256=` pin is
verified. The checks, downloads and install are `otatui.sim.device_work.DeviceWork`'s:
"installing" writes the files under `<folder>/installed/<version>/` and the version into
`<folder>/version`.

`fail="test" | "download" | "install"` makes that step fail with a clear "simulated ..." message;
`step_delay` seconds pass before each step, so a demo can be watched. Writes are sent in order,
each retried until the connector confirms it (across reconnects). The folder keeps the token
(mode 0600), the machine's snapshot, the download cache and its index. `run()` runs until
cancelled and then closes everything it opened; a refused token or an identity that is already
provisioned without a token in the folder ends it with a `LanDeviceError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

import httpx

from otatui.murano.channel import (
    AuthError,
    Channel,
    ChannelError,
    ChannelState,
    LinkState,
    ResourceValue,
)
from otatui.murano.device_api import device_api_client
from otatui.murano.http import HttpChannel
from otatui.murano.mqtt import MqttChannel
from otatui.otau import actions as act
from otatui.otau import events as ev
from otatui.otau.machine import UpdateMachine
from otatui.otau.manifest import parse_manifest
from otatui.otau.progress import ProgressPolicy
from otatui.otau.snapshot import Phase
from otatui.otau.status import StatusReport
from otatui.sim.activation import (
    Activation,
    ActivationRefused,
    forget_token,
    load_token,
    save_token,
)
from otatui.sim.device_work import DeviceWork, write_atomic
from otatui.store import Store
from otatui.transfer import ContentAuth, Downloader

log = logging.getLogger(__name__)

CONFIG_OTAU = "config_otau"
OTAU_IN = "otau_in"
SNAPSHOT_FILE = "machine.json"
TICK_S = 0.5
_MAX_RETRY_S = 2.0


class LanDeviceError(Exception):
    """The simulated device cannot go on (one line, never the token)."""


class LanDevice:
    """A device of ours on the (local) network; see the module docstring."""

    def __init__(
        self,
        *,
        base_url: str,
        mqtt_url: str | None = None,
        identity: str,
        protocol: Literal["mqtt", "http"] = "mqtt",
        installed_version: str,
        folder: Path,
        fail: str | None = None,
        step_delay: float = 0.2,
        token: str | None = None,
        ca_file: str | None = None,
        policy: ProgressPolicy | None = None,
        request_timeout_ms: int = 30_000,
        activate_timeout: float = 5.0,
    ) -> None:
        if protocol not in ("mqtt", "http"):
            raise ValueError(f"protocol must be 'mqtt' or 'http', not {protocol!r}")
        if protocol == "mqtt" and not mqtt_url:
            raise ValueError("an MQTT device needs mqtt_url")
        if not identity:
            raise ValueError("a device needs an identity")
        self.base_url = base_url.rstrip("/")
        self.mqtt_url = mqtt_url
        self.identity = identity
        self.protocol = protocol
        self.folder = folder
        self.ca_file = ca_file
        self.request_timeout_ms = request_timeout_ms
        self.activate_timeout = activate_timeout
        self._token = token
        self._given_token = token is not None
        self._content_auth: ContentAuth | None = None
        self._policy = policy or ProgressPolicy()
        self._initial_version = installed_version
        self.machine = UpdateMachine(installed_version, self._policy)
        self.channel_state = ChannelState(LinkState.STOPPED, "not started")
        self.connected = asyncio.Event()
        self.written: list[tuple[str, str]] = []  # every write the connector confirmed, in order
        self._events: asyncio.Queue[ev.Event] = asyncio.Queue()
        self._outbox: deque[ResourceValue] = deque()  # an item leaves once confirmed
        self._outbox_changed = asyncio.Event()
        self._work: dict[int, asyncio.Task[None]] = {}
        self._aborted: set[asyncio.Task[None]] = set()  # cancelled jobs still on their way out
        self._received: dict[str, ResourceValue] = {}
        self._loop_time: Callable[[], float] = lambda: 0.0
        self.work = DeviceWork(
            folder, post=self._post, now=self._now, fail=fail, step_delay=step_delay
        )

    def __repr__(self) -> str:
        return f"<LanDevice {self.identity} {self.protocol} {self.installed_version}>"

    @property
    def token(self) -> str | None:
        """The token the device uses (given, kept in its folder, or got by activating)."""
        return self._token

    @property
    def installed_version(self) -> str:
        return self.machine.installed_version

    @property
    def reports(self) -> list[StatusReport]:
        """The `otau_in` reports the connector confirmed, in order."""
        return [StatusReport.from_json(v) for a, v in self.written if a == OTAU_IN]

    # -- life cycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Activate, connect, follow manifests until cancelled; then close everything.

        A token the device got by activating (now or in an earlier run) that the connector
        refuses is forgotten and the identity activated again, as a device must after its
        identity was reset on the connector; a refused token given to the constructor ends
        the run with `LanDeviceError`.
        """
        loop = asyncio.get_running_loop()
        self._loop_time = loop.time
        self.folder.mkdir(parents=True, exist_ok=True)
        self._restore()
        client = device_api_client(ca_file=self.ca_file)
        store: Store | None = None
        downloader: Downloader | None = None
        tasks: list[asyncio.Task[None]] = []
        try:
            store = Store.open(self.folder / "device.db")
            downloader = Downloader(client, store, self.folder / "cache", retries=3, backoff_s=0.2)
            token = await self._credentials(client)
            self._content_auth = ContentAuth(self.base_url, token)
            tasks = [
                asyncio.create_task(self._drive(downloader), name=f"{self.identity}: drive"),
                asyncio.create_task(self._tick(), name=f"{self.identity}: tick"),
            ]
            self._post(ev.Boot(now=loop.time()))
            while True:
                try:
                    await self._session(self._channel(client, token), tasks)
                except AuthError:
                    if self._given_token:
                        raise LanDeviceError(
                            f"{self.identity}: the connector refused the device's token"
                        ) from None
                    log.info("%s: token refused; activating again", self.identity)
                    self._token = None
                    forget_token(self.folder)
                    token = await self._credentials(client)
                    self._content_auth = ContentAuth(self.base_url, token)
        finally:
            pending = [*tasks, *self._work.values()]
            for task in pending:
                task.cancel()
            # aborted jobs were cancelled already: let them finish their way out
            await asyncio.gather(*pending, *self._aborted, return_exceptions=True)
            if downloader is not None:
                await downloader.aclose()
            await client.aclose()
            if store is not None:
                store.close()
            self.connected.clear()

    async def _session(self, channel: Channel, workers: list[asyncio.Task[None]]) -> None:
        """One channel's life: receive and write until a task fails (AuthError: the token)."""
        await channel.start()
        tasks = [
            asyncio.create_task(self._receive(channel), name=f"{self.identity}: receive"),
            asyncio.create_task(self._write(channel), name=f"{self.identity}: write"),
        ]
        try:
            done, _ = await asyncio.wait([*tasks, *workers], return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                exc = task.exception()
                if exc is not None:
                    raise exc
            raise ChannelError(f"{self.identity}: the connection ended")  # not expected
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await channel.close()

    # -- credentials and channel ----------------------------------------------------------------

    async def _credentials(self, client: httpx.AsyncClient) -> str:
        self._token = self._token or load_token(self.folder)
        if self._token:
            return self._token
        mqtt_url = self.mqtt_url if self.protocol == "mqtt" else None
        activation = Activation(
            self.identity, self.base_url, mqtt_url, self.ca_file, self.activate_timeout
        )
        try:
            token = await activation.activate(client)
        except ActivationRefused as exc:
            raise LanDeviceError(str(exc)) from None
        self._token = token
        save_token(self.folder, token)
        log.info("%s: activated on %s", self.identity, self.base_url)
        return token

    def _channel(self, client: httpx.AsyncClient, token: str) -> Channel:
        if self.protocol == "mqtt":
            assert self.mqtt_url is not None
            return MqttChannel(
                self.mqtt_url,
                token,
                ca_file=self.ca_file,
                insecure=True,
                on_state=self._on_state,
                keepalive=30,
                connect_timeout=5.0,
                ack_timeout=10.0,
            )
        return HttpChannel(
            client,
            self.base_url,
            token,
            on_state=self._on_state,
            request_timeout_ms=self.request_timeout_ms,
            read_margin_s=5.0,
            connect_timeout_s=5.0,
            write_timeout_s=10.0,
        )

    def _on_state(self, state: ChannelState) -> None:
        self.channel_state = state
        if state.state is LinkState.CONNECTED:
            self.connected.set()
        else:
            self.connected.clear()

    # -- the actor -----------------------------------------------------------------------------

    def _post(self, event: ev.Event) -> None:
        self._events.put_nowait(event)

    def _now(self) -> float:
        return self._loop_time()

    async def _receive(self, channel: Channel) -> None:
        async for value in channel.values():
            if value.alias != CONFIG_OTAU:
                continue
            parsed = parse_manifest(value.raw)
            self._received = {parsed.raw: value}  # the ack echoes what came, exactly
            self._post(ev.ManifestReceived(parsed=parsed, now=self._now()))

    async def _drive(self, downloader: Downloader) -> None:
        while True:
            event = await self._events.get()
            before = self.machine.snapshot()
            for action in self.machine.handle(event):
                self._carry_out(action, downloader)
            if self.machine.snapshot() != before:
                await asyncio.to_thread(self._save)

    def _carry_out(self, action: act.Action, downloader: Downloader) -> None:
        match action:
            case act.Acknowledge(raw=raw):
                received = self._received.get(raw) or ResourceValue(CONFIG_OTAU, raw)
                self._send(received)
            case act.Report(report=report):
                self._send(ResourceValue(OTAU_IN, report.to_json()))
            case act.RunChecks(manifest=manifest, job=job):
                self._start(job, self.work.checks(manifest, job))
            case act.StartDownload(manifest=manifest, job=job, files_done=done):
                auth = self._content_auth
                assert auth is not None  # set before any channel delivers a manifest
                self._start(job, self.work.download(downloader, auth, manifest, job, done))
            case act.StartInstall(manifest=manifest, job=job):
                self._start(job, self.work.install(manifest, job))
            case act.Abort(job=job):
                task = self._work.pop(job, None)
                if task is not None:
                    task.cancel()
                    self._aborted.add(task)  # awaited when the device stops
                    task.add_done_callback(self._aborted.discard)
            case act.Rejected(reason=reason):
                log.info("%s: rejected a config_otau value: %s", self.identity, reason)

    def _send(self, value: ResourceValue) -> None:
        self._outbox.append(value)
        self._outbox_changed.set()

    async def _write(self, channel: Channel) -> None:
        """Send the acknowledgements and reports in order, each until it is confirmed."""
        while True:
            while not self._outbox:
                self._outbox_changed.clear()
                await self._outbox_changed.wait()
            value = self._outbox[0]
            delay = 0.05
            while True:
                try:
                    if value.alias == CONFIG_OTAU:
                        await channel.acknowledge(value)
                    else:
                        await channel.write(value.alias, value.raw)
                    break
                except AuthError:
                    raise
                except ChannelError as exc:
                    log.debug("%s: %s not written (%s); again", self.identity, value.alias, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _MAX_RETRY_S)
            self._outbox.popleft()
            self.written.append((value.alias, value.raw))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            if self.machine.phase is not Phase.IDLE:
                self._post(ev.Tick(now=self._now()))

    def _start(self, job: int, work: Awaitable[None]) -> None:
        async def runner() -> None:
            try:
                await work
            finally:
                if self._work.get(job) is task:
                    del self._work[job]

        task = asyncio.create_task(runner(), name=f"{self.identity}: job {job}")
        self._work[job] = task

    # -- persistence ---------------------------------------------------------------------------

    def _restore(self) -> None:
        path = self.folder / SNAPSHOT_FILE
        if not path.exists():
            self.machine = UpdateMachine(self._initial_version, self._policy)
            return
        try:
            self.machine = UpdateMachine.restore(json.loads(path.read_text("utf-8")), self._policy)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("%s: saved state unreadable (%s); starting afresh", self.identity, exc)
            self.machine = UpdateMachine(self._initial_version, self._policy)

    def _save(self) -> None:
        write_atomic(self.folder / SNAPSHOT_FILE, json.dumps(self.machine.snapshot()))
