"""`otatui sync`: deliver the outbox backlog now, with the reports' original timestamps.

Device by device (only those with reports waiting), over the device's configured protocol and
with its own token, the pending ``otau_in`` reports are sent in order as timestamped batches
(``$resource.batch`` over MQTT, ``/onep:v1/stack/record`` over HTTP), cut with
`split_for_record` so every batch is one request the connector accepts. A batch leaves the outbox
only once the connector confirmed it; nothing is ever sent twice after a confirmation, and what
cannot be delivered (connector unreachable, token refused, time out) stays in the outbox for the
engine or a later sync. Devices are synced concurrently, all within one time limit.

This runs no update flow: no boot report, no manifest handling, no acknowledgement.

It holds the data dir's lock while it runs (`otatui.store.lock`): while `otatui run` or the TUI
has the engine running (which delivers the outbox itself), it refuses with `DataDirBusy`, one
line saying so, instead of sending the same reports a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from otatui.config import Config, DeviceConfig, TokenError
from otatui.murano.channel import (
    AuthError,
    Channel,
    ChannelError,
    ChannelState,
    LinkState,
    NotConnected,
    TimedValue,
)
from otatui.murano.http import HttpChannel, device_api_client
from otatui.murano.mqtt import MqttChannel
from otatui.murano.record import split_for_record
from otatui.otau.status import StatusReport
from otatui.store import OutboxItem, Store, StoreError
from otatui.store.lock import DataDirLock

BATCH_LIMIT = 100
RETRY_S = (0.5, 1.0, 2.0, 4.0, 5.0)
DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class SentReport:
    """One delivered report, for the summary."""

    produced_at: float
    version: str | None
    status: str | None


@dataclass
class DeviceSync:
    """What the sync did for one device."""

    device: str
    pending: int
    """Reports waiting when the sync started."""
    sent: list[SentReport] = field(default_factory=list)
    remaining: int = 0
    error: str | None = None
    """Why not everything was delivered (one line), ``None`` when all was."""

    @property
    def ok(self) -> bool:
        return self.error is None and self.remaining == 0


@dataclass
class SyncResult:
    devices: list[DeviceSync]
    unknown_pending: int = 0
    """Reports of devices no longer in the configuration (they cannot be sent: no token)."""

    @property
    def ok(self) -> bool:
        return self.unknown_pending == 0 and all(d.ok for d in self.devices)


class _Watch:
    """Follows a channel's connection state (for MQTT, which connects in the background)."""

    def __init__(self) -> None:
        self.state = ChannelState(LinkState.STOPPED)
        self.changed = asyncio.Event()

    def __call__(self, state: ChannelState) -> None:
        self.state = state
        self.changed.set()

    async def settled(self) -> ChannelState:
        """Wait until connected or refused for good."""
        while self.state.state not in (LinkState.CONNECTED, LinkState.AUTH_FAILED):
            self.changed.clear()
            await self.changed.wait()
        return self.state


class OutboxSync:
    """Sends the outbox backlog of the configured devices (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
        batch_limit: int = BATCH_LIMIT,
    ) -> None:
        if timeout <= 0:
            raise ValueError("the sync timeout must be positive")
        self.config = config
        self.store = store
        self.timeout = timeout
        self.clock = clock
        self.batch_limit = batch_limit

    async def run(self) -> SyncResult:
        """Send the backlog; raises `DataDirBusy` (a `StoreError`) while an engine runs."""
        with DataDirLock(self.config.locations.data_dir, "otatui sync"):
            return await self._run()

    async def _run(self) -> SyncResult:
        waiting = [(d, self.store.count_pending(d.name)) for d in self.config.devices]
        waiting = [(d, n) for d, n in waiting if n > 0]
        known = sum(n for _, n in waiting)
        unknown = self.store.count_pending() - known
        results = [DeviceSync(device=d.name, pending=n, remaining=n) for d, n in waiting]
        if not results:
            return SyncResult([], unknown)
        connector = self.config.connector
        async with device_api_client(
            ca_file=str(connector.ca_file) if connector.ca_file else None
        ) as client:
            await asyncio.gather(
                *(
                    self._device(device, result, client)
                    for (device, _), result in zip(waiting, results, strict=True)
                )
            )
        return SyncResult(results, unknown)

    async def _device(
        self, device: DeviceConfig, result: DeviceSync, client: httpx.AsyncClient
    ) -> None:
        watch = _Watch()
        last_reason = ""
        try:
            channel = self._channel(device, client, watch)
        except (ChannelError, TokenError) as exc:
            result.error = str(exc)
            return
        try:
            async with asyncio.timeout(self.timeout):
                await channel.start()
                await self._drain(device, channel, watch, result)
        except TimeoutError:
            last_reason = _reason(watch, result)
            result.error = f"not done within {self.timeout:g} s" + (
                f" ({last_reason})" if last_reason else ""
            )
        except AuthError as exc:
            result.error = str(exc)
        except StoreError as exc:
            result.error = str(exc)
        finally:
            with contextlib.suppress(ChannelError):
                await channel.close()
            with contextlib.suppress(StoreError):
                result.remaining = self.store.count_pending(device.name)

    async def _drain(
        self, device: DeviceConfig, channel: Channel, watch: _Watch, result: DeviceSync
    ) -> None:
        failures = 0
        while True:
            items = self.store.pending(device.name, limit=self.batch_limit)
            if not items:
                return
            if isinstance(channel, MqttChannel):
                state = await watch.settled()
                if state.state is LinkState.AUTH_FAILED:
                    raise AuthError(state.reason or "the connector refused the device token")
            records = [TimedValue(i.resource, i.value, i.produced_at) for i in items]
            group = items[: len(split_for_record(records)[0])]
            try:
                await channel.write_batch(
                    [TimedValue(i.resource, i.value, i.produced_at) for i in group]
                )
            except AuthError:
                raise
            except ChannelError as exc:
                result.error = str(exc)  # the latest reason; cleared by a later success
                if not isinstance(exc, NotConnected):
                    self.store.note_failure(group[0].id, str(exc))
                await asyncio.sleep(RETRY_S[min(failures, len(RETRY_S) - 1)])
                failures += 1
                continue
            failures = 0
            result.error = None
            self.store.confirm([i.id for i in group], self.clock())
            result.sent.extend(_sent(i) for i in group)

    def _channel(self, device: DeviceConfig, client: httpx.AsyncClient, watch: _Watch) -> Channel:
        if device.auth == "cert":
            raise ChannelError(
                "certificate authentication is not supported by otatui yet; give the device a token"
            )
        token = device.token_value()
        if not token:
            raise ChannelError("no token: the device was never provisioned")
        connector = self.config.connector
        if device.protocol == "mqtt":
            if connector.mqtt_url is None:  # config validation makes this unreachable
                raise ChannelError("no connector.mqtt_url configured")
            return MqttChannel(
                connector.mqtt_url,
                token,
                ca_file=str(connector.ca_file) if connector.ca_file else None,
                insecure=connector.insecure,
                on_state=watch,
            )
        return HttpChannel(client, connector.base_url, token, watch=(), on_state=watch)


def _reason(watch: _Watch, result: DeviceSync) -> str:
    if result.error:
        return result.error
    if watch.state.state is LinkState.BACKOFF and watch.state.reason:
        return f"cannot connect: {watch.state.reason}"
    if watch.state.state is LinkState.CONNECTING:
        return "still connecting"
    return ""


def _sent(item: OutboxItem) -> SentReport:
    try:
        report = StatusReport.from_json(item.value)
    except ValueError:
        return SentReport(item.produced_at, None, None)
    return SentReport(item.produced_at, report.version, report.status.value)


# -- summary lines --------------------------------------------------------------------------------


def summary_lines(result: SyncResult, format_time: Callable[[float], str]) -> list[str]:
    """One line per device (what was sent, or why something was not), for the command line."""
    lines: list[str] = []
    for device in result.devices:
        sent = len(device.sent)
        noun = "report" if sent == 1 else "reports"
        text = f"{device.device}: sent {sent} of {device.pending} {noun}"
        if device.sent:
            first, last = device.sent[0], device.sent[-1]
            text += f" ({_label(first, format_time)}"
            if sent > 1:
                text += f" ... {_label(last, format_time)}"
            text += ")"
        if not device.ok:
            text += f"; {device.remaining} kept in the outbox"
            if device.error:
                text += f": {device.error}"
        lines.append(text)
    if result.unknown_pending:
        lines.append(
            f"{result.unknown_pending} reports of devices not in the configuration stay in the"
            " outbox"
        )
    if not lines:
        lines.append("nothing to send: the outbox is empty")
    return lines


def _label(report: SentReport, format_time: Callable[[float], str]) -> str:
    what = " ".join(p for p in (report.status, report.version) if p) or "report"
    return f"{what} at {format_time(report.produced_at)}"
