"""The monitor role: watch a device's `config_otau` and `otau_in` without writing anything.

A monitor reads both resources once, then long-polls `config_otau` over HTTP and reads `otau_in`
every `read_interval` seconds (a long poll answers for values the application sets; whether one
wakes for values the device writes is not documented, so the monitor does not rely on it). Every
change is recorded in the history (already in the cloud, so marked delivered). It never writes to
the connector: no acknowledgement, no report.

`otau_in` is sampled: each read sees the latest value only, so reports the device writes between
two reads are missed; every `ReportObserved` says so (`sampled=True`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from otatui.engine.events import (
    ConnectionChanged,
    EventBus,
    ReportObserved,
    SessionError,
    manifest_event,
)
from otatui.murano.channel import ChannelError, ChannelState, ResourceValue
from otatui.murano.http import HttpChannel
from otatui.otau.manifest import ManifestError, parse_manifest
from otatui.otau.status import StatusReport
from otatui.store import Store, StoreError

WATCHED = ("config_otau", "otau_in")
READ_INTERVAL_S = 5.0


class Monitor:
    def __init__(
        self,
        *,
        name: str,
        channel: HttpChannel,
        store: Store,
        bus: EventBus,
        clock: Callable[[], float] = time.time,
        read_interval: float = READ_INTERVAL_S,
    ) -> None:
        self.name = name
        self.read_interval = read_interval
        self.channel = channel
        self.store = store
        self.bus = bus
        self.clock = clock
        self.seen: dict[str, str] = {}

    async def run(self) -> None:
        await self.channel.start()
        reader = asyncio.create_task(self._read_loop(), name=f"{self.name}: read")
        try:
            async for value in self.channel.values():
                self.observe(value)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await self.channel.close()

    async def _read_loop(self) -> None:
        reported = False
        while True:
            try:
                current = await self.channel.read(WATCHED)
            except ChannelError as exc:
                if not reported:  # the channel's state events tell the rest
                    self.bus.publish(SessionError(device=self.name, message=f"read: {exc}"))
                    reported = True
            else:
                reported = False
                for alias in WATCHED:
                    if alias in current:
                        self.observe(ResourceValue(alias=alias, raw=current[alias], source="http"))
            await asyncio.sleep(self.read_interval)

    def observe(self, value: ResourceValue) -> None:
        """Record a value of a watched resource once (repeats of the same text are skipped)."""
        if value.alias not in WATCHED or self.seen.get(value.alias) == value.raw:
            return
        self.seen[value.alias] = value.raw
        now = self.clock()
        at = value.timestamp or now
        if value.alias == "config_otau":
            parsed = parse_manifest(value.raw)
            reason = parsed.reason if isinstance(parsed, ManifestError) else None
            self._history("in", value, at, parsed.version, None, reason)
            self.bus.publish(manifest_event(self.name, parsed, "http"))
            return
        try:
            report = StatusReport.from_json(value.raw)
        except ValueError as exc:
            self._history("out", value, at, None, None, str(exc))
            self.bus.publish(SessionError(device=self.name, message=f"otau_in: {exc}"))
            return
        self._history("out", value, at, report.version, report.status.value, None)
        self.bus.publish(
            ReportObserved(
                device=self.name,
                time=at,
                version=report.version,
                status=report.status.value,
                message=report.message,
                source="http",
                sampled=True,  # read every `read_interval` s: the latest value, not every report
            )
        )

    def _history(
        self,
        direction: str,
        value: ResourceValue,
        at: float,
        version: str | None,
        status: str | None,
        note: str | None,
    ) -> None:
        try:
            self.store.add_history(
                device=self.name,
                direction="in" if direction == "in" else "out",
                resource=value.alias,
                value=value.raw,
                source="http",
                time=at,
                version=version,
                status=status,
                note=note,
                delivered_at=at if direction == "out" else None,
            )
        except StoreError as exc:
            self.bus.publish(SessionError(device=self.name, message=str(exc)))

    def on_channel_state(self, state: ChannelState) -> None:
        self.bus.publish(ConnectionChanged.of(self.name, "http", state))
