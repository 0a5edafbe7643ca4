"""`otatui demo`: run the demo site with the TUI, or headless (`--headless`, JSON lines).

Headless, the demo exits 0 when every scripted update reached its expected final status in the
connector's record of `otau_in`, 1 when one did not within the time limit (each listed on stderr).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from otatui.config import Config
from otatui.demo.player import Outcome, Player
from otatui.demo.script import DEVICES, DemoDevice
from otatui.demo.simulated import Simulated, free_port
from otatui.demo.site import DemoSite
from otatui.engine.events import EventBus
from otatui.engine.fleet import Fleet
from otatui.engine.jsonlines import JsonLinesPrinter
from otatui.engine.redaction import configured_secrets

HEADLESS_TIMEOUT_S = 120.0


@dataclass
class DemoRun:
    """A started demo: its site, configuration, simulated devices and application side."""

    site: DemoSite
    config: Config
    player: Player
    simulated: Simulated


@contextlib.asynccontextmanager
async def demo_site(
    root: Path, *, pace: float, step_delay: float, lifelike: bool = False
) -> AsyncIterator[DemoRun]:
    """The running demo site (connector, vendor server, simulated devices), stopped on exit.

    `lifelike`: the vendor's host serves at 768 KiB/s and the serial sensor's line runs at
    115200 baud, so that a watching human sees downloads and pushes progress."""
    simulated = Simulated(
        root / "devices", step_delay=step_delay, baud=115_200 if lifelike else None
    )
    devices = tuple(d for d in DEVICES if simulated.supports(d))
    lan = (free_port(), free_port()) if any(d.link == "lan" for d in devices) else None
    site = DemoSite(
        root,
        devices=devices,
        step_delay=step_delay,
        lan_ports=lan,
        vendor_rate=768 * 1024 if lifelike else None,
    )
    try:
        site.links.update(await simulated.prepare(devices, lan))
        config = await site.start()
        await simulated.start(site)
        player = Player(site.connector, devices, site.manifest, pace=pace)
        yield DemoRun(site, config, player, simulated)
    finally:
        await simulated.stop()
        await site.stop()


@contextlib.contextmanager
def demo_folder(keep: bool) -> Iterator[Path]:
    """The demo's folder: a new temporary one, removed afterwards unless `keep`."""
    root = Path(tempfile.mkdtemp(prefix="otatui-demo-"))
    try:
        yield root
    finally:
        if keep:
            print(
                f"otatui demo: kept {root} (configuration: {root / 'otatui.toml'})",
                file=sys.stderr,
            )
        else:
            shutil.rmtree(root, ignore_errors=True)


async def run_headless(
    root: Path, out: TextIO, *, limit_s: float = HEADLESS_TIMEOUT_S, pace: float = 1.0
) -> list[Outcome]:
    """Play the demo without a UI, printing engine events as JSON lines; the outcomes."""
    async with demo_site(root, pace=pace, step_delay=0.05) as demo:
        bus = EventBus()
        printer = JsonLinesPrinter(bus, out, secrets=configured_secrets(demo.config))
        printer.start()
        try:
            async with Fleet(demo.config, bus=bus) as fleet:
                fleet.start()
                play = asyncio.create_task(demo.player.play(), name="demo script")
                try:
                    return await demo.player.wait_until_done(limit_s)
                finally:
                    await stop_task(play)
        finally:
            await printer.stop()


async def run_interactive(root: Path, *, no_color: bool, pace: float = 2.0) -> int:
    """Play the demo at a human pace under the TUI until the technician quits."""
    from otatui.tui.launch import run_tui_async

    async with demo_site(root, pace=pace, step_delay=0.4, lifelike=True) as demo:
        play = asyncio.create_task(demo.player.play(), name="demo script")
        try:
            return await run_tui_async(demo.config, no_color=no_color)
        finally:
            await stop_task(play)


async def stop_task(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait for it; an error it had ended with is raised. A cancellation of
    the caller meanwhile is not swallowed."""
    task.cancel()
    (result,) = await asyncio.gather(task, return_exceptions=True)
    if isinstance(result, Exception):
        raise result


def summary(outcomes: list[Outcome], devices: tuple[DemoDevice, ...] = DEVICES) -> list[str]:
    done = sum(o.ok for o in outcomes)
    lines = [f"otatui demo: {done} of {len(outcomes)} scripted updates ended as expected"]
    lines += [f"  {'ok  ' if o.ok else 'FAIL'} {o.line()}" for o in outcomes]
    return lines


def main(*, headless: bool, keep: bool, no_color: bool = False) -> int:
    """The `demo` command; the exit code."""
    with demo_folder(keep) as root:
        if headless:
            outcomes = asyncio.run(run_headless(root, sys.stdout))
            for line in summary(outcomes):
                print(line, file=sys.stderr)
            return 0 if outcomes and all(o.ok for o in outcomes) else 1
        return asyncio.run(run_interactive(root, no_color=no_color))
