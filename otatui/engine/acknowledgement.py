"""The live acknowledgement of a received `config_otau`: the identical text written back.

Sent at once and retried across reconnects until the connector confirms it; a newer
acknowledgement replaces one still trying. Once confirmed it is recorded in the history as
delivered. (A manifest taken up offline is acknowledged through the outbox instead: see
`otatui.engine.recorder`.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from otatui.engine.events import EventBus, SessionError
from otatui.murano.channel import AuthError, Channel, ChannelError, ResourceValue
from otatui.store import Store, StoreError

CONFIG_OTAU = "config_otau"
MAX_DELAY_S = 10.0


class Acknowledgement:
    def __init__(
        self,
        *,
        name: str,
        channel: Channel,
        store: Store,
        bus: EventBus,
        clock: Callable[[], float],
        connected: Callable[[], Awaitable[None]],
    ) -> None:
        self.name = name
        self.channel = channel
        self.store = store
        self.bus = bus
        self.clock = clock
        self.connected = connected  # waits until the channel is connected
        self._task: asyncio.Task[None] | None = None

    def send(self, raw: str) -> None:
        """Echo `raw` (the exact text received) to `config_otau`, in the background."""
        if self._task is not None:
            self._task.cancel()
        self._task = asyncio.create_task(self._send(raw), name=f"{self.name}: ack")

    async def _send(self, raw: str) -> None:
        value = ResourceValue(alias=CONFIG_OTAU, raw=raw, source=self.channel.protocol)
        delay = 0.5
        while True:
            try:
                await self.channel.acknowledge(value)
            except AuthError:
                return
            except ChannelError:
                await self.connected()
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_DELAY_S)
                continue
            try:
                self.store.add_history(
                    device=self.name,
                    direction="out",
                    resource=CONFIG_OTAU,
                    value=raw,
                    source=self.channel.protocol,
                    note="acknowledgement",
                    delivered_at=self.clock(),
                )
            except StoreError as exc:
                self.bus.publish(SessionError(device=self.name, message=str(exc)))
            return

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
