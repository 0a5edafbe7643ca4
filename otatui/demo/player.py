"""Plays the demo's application side and tells when every scripted update has ended.

The player writes each offer's manifest to the device's `config_otau` on the local connector at its
time (as ExoSense would), arms the connector's download faults an offer asks for, and watches the
connector's record of `otau_in` (the cloud's view, the only one that counts) until every scripted
update reached a final status.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from otatui.connector import Connector
from otatui.demo.script import DemoDevice, Offer
from otatui.otau.status import Status

FINAL = frozenset(s.value for s in Status if s.is_final)


@dataclass(frozen=True, slots=True)
class Outcome:
    device: str
    expected: tuple[str, str]
    reached: tuple[str, str] | None  # the last final (version, status) the connector received

    @property
    def ok(self) -> bool:
        return self.reached == self.expected

    def line(self) -> str:
        want = " ".join(self.expected)
        if self.ok:
            return f"{self.device}: {want} as scripted"
        got = " ".join(self.reached) if self.reached else "no final status yet"
        return f"{self.device}: expected {want}, got {got}"


class Player:
    """The application side of the demo, against one connector."""

    def __init__(
        self,
        connector: Connector,
        devices: tuple[DemoDevice, ...],
        manifest: Callable[[Offer], str],
        *,
        pace: float = 1.0,
    ) -> None:
        self.connector = connector
        self.devices = devices
        self.manifest = manifest
        self.pace = pace  # 2.0 plays the script at half speed (for a watching human)

    async def play(self) -> None:
        """Write every offer at its time; returns after the last one."""
        start = time.monotonic()
        timeline = sorted(
            ((offer.at, device, offer) for device in self.devices for offer in device.offers),
            key=lambda entry: entry[0],
        )
        for at, device, offer in timeline:
            delay = start + at * self.pace - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if offer.drop_download_after is not None and offer.drops:
                self.connector.faults.drop_download_after(
                    offer.drop_download_after, count=offer.drops
                )
            self.connector.set_config_otau(device.identity, self.manifest(offer))

    def outcomes(self) -> list[Outcome]:
        """Each scripted update and the last final status the connector received for it."""
        out = []
        for device in self.devices:
            if device.expect is None:
                continue
            reached = None
            for report in self.connector.reports(device.identity, "otau_in"):
                try:
                    value = json.loads(report.value)
                except ValueError:
                    continue
                if isinstance(value, dict) and value.get("status") in FINAL:
                    reached = (str(value.get("version")), str(value["status"]))
            out.append(Outcome(device.name, device.expect, reached))
        return out

    async def wait_until_done(self, limit_s: float) -> list[Outcome]:
        """Wait until every scripted update reached its expected final status (or time ran out)."""
        deadline = time.monotonic() + limit_s
        while True:
            outcomes = self.outcomes()
            if all(o.ok for o in outcomes) or time.monotonic() >= deadline:
                return outcomes
            await asyncio.sleep(0.2)
