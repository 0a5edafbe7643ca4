"""Benchmark: the Fleet screen of the real `OtaApp` under an event flood, key press to repaint.

    .venv/bin/python bench/tui_load.py [--devices 1000] [--rate 5000] [--presses 40]
                                       [--repeat 1] [--profile flood|idle] [--json FILE]

To measure a commit rather than the shared working tree, put a snapshot first on the path:
``git archive HEAD otatui | tar -x -C /tmp/snap; PYTHONPATH=/tmp/snap .venv/bin/python
bench/tui_load.py`` (the result's ``code`` says which otatui was measured).

The app runs under Textual's Pilot (``run_test(size=(120, 40))``, headless) over `LoadBackend`
(the `Backend` protocol with ``--devices`` generated devices and an event queue this benchmark
feeds). An asyncio task in the app's own loop publishes ``--rate`` engine events per second at a
steady pace (catching up after a stall, as a socket backlog would): `TransferProgress` for ~200
downloading devices (their downloads finish and others start), `ReportQueued` status reports,
`ReportsDelivered` for them and `ConnectionChanged` flaps. The achieved rate is measured.

Latency of one key press: from handing the key event to the driver (as a terminal's input
thread does) to the first repaint whose picture shows the key's effect. Every repaint the
compositor produces is turned into terminal bytes (``render_segments``: what a real terminal
would be sent; the headless driver skips that step) and applied to a virtual 120x40 screen of
characters and styles; the press is done when that screen shows the effect: the highlight on
the next device (cursor down), the filter line and a table whose rows on screen are the table's
rows at its scroll position (filter keys, state filter, sort), the device screen's header and
title (enter), the Fleet screen with the highlight back on the device (escape). A check that
holds before the key is sent is an error; a press whose effect does not show within 60 s counts
as a timeout (its latency is then taken as 60 s).

Keys, cycled: 5 x down, ``/ p u m p`` (filter), escape (clear), 5 x f (state filter round),
4 x s (sort round), enter (device screen), escape (back). One unrecorded round warms up first;
a human pause of 150-300 ms separates presses. The baseline is the same run with no flood.
Also printed: events applied per second by `FleetState` (in the app, and alone on the same
mix), CPU time, repaints per second, loop stalls. ``--profile flood`` (or ``idle``) adds one
run under cProfile (its latencies are not the result).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import hashlib
import io
import json
import os
import pstats
import random
import re
import statistics
import subprocess
import sys
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.cells import cell_len
from rich.color import Color
from rich.style import Style
from textual import events
from textual._compositor import ChopsUpdate, CompositorUpdate, LayoutUpdate
from textual.keys import REPLACED_KEYS, _get_unicode_name_from_key
from textual.screen import Screen
from textual.strip import Strip

import otatui.tui.app
from otatui.engine.events import (
    ConnectionChanged,
    Event,
    EventQueue,
    ManifestReceived,
    PhaseChanged,
    ReportQueued,
    ReportsDelivered,
    TransferFinished,
    TransferProgress,
)
from otatui.engine.prefetch import DeviceFetch
from otatui.otau.payload import PayloadItem
from otatui.transfer import CachedFile
from otatui.tui.app import OtaApp
from otatui.tui.backend import Backend, BackendError, ContentEntry, ExportFormat, StoredHistory
from otatui.tui.records import Category, DeviceInfo
from otatui.tui.screens.device import DeviceScreen
from otatui.tui.screens.fleet import SORTS, STATE_FILTERS, FleetScreen
from otatui.tui.state import FleetState

SIZE = (120, 40)
GOAL_MS = 50.0
PRESS_TIMEOUT_S = 60.0
RUN_BUDGET_S = 600.0
"""A run stops pressing keys after this long (an app that takes seconds per key)."""
FEED_PERIOD_S = 0.002
OLD, NEW = "1.4.0", "2.0.0"
FILE_SIZE = 8 * 1024 * 1024
CHUNK = 64 * 1024
ERROR_SHARE = 1 / 1000
"""Status reports that are errors (~1.25 failures/s at 5,000 events/s)."""
KINDS = ("pump", "sensor", "gateway", "valve", "meter")
NAME_RE = re.compile(r"\b(?:pump|sensor|gateway|valve|meter)-\d{4,}\b")
ROUND: tuple[str, ...] = (
    *("down",) * 5,
    *("slash", "p", "u", "m", "p", "escape"),
    *("f",) * 5,
    *("s",) * 4,
    "enter",
    "escape",
)
TCSS = Path(otatui.tui.app.__file__).with_name("otatui.tcss")


class BenchError(Exception):
    """The benchmark cannot measure what it claims (one line)."""


# -- the backend --------------------------------------------------------------------------------


def make_devices(n: int) -> list[DeviceInfo]:
    """`n` devices: five kinds of names, mostly MQTT/HTTP agents, some bridges and monitors."""
    out = []
    for i in range(n):
        role = "monitor" if i % 50 == 7 else "bridge" if i % 20 == 3 else "agent"
        link = None
        if role == "bridge":
            link = "serial:/dev/ttyUSB0?baud=115200" if i % 40 == 3 else "lan"
        out.append(
            DeviceInfo(
                name=f"{KINDS[i % len(KINDS)]}-{i:04d}",
                identity=hashlib.sha256(str(i).encode()).hexdigest()[:12],
                role=role,
                protocol="http" if i % 3 == 0 else "mqtt",
                link=link,
                installed_version=OLD,
            )
        )
    return out


class LoadBackend:
    """The `Backend` protocol over generated devices and a queue the benchmark feeds.

    No engine runs: the actions (cancel, retry, apply, prefetch, export) refuse with a
    `BackendError`, which the app shows as a notification; the benchmark does not use them."""

    def __init__(self, devices: Sequence[DeviceInfo], title: str = "load benchmark") -> None:
        self._devices = list(devices)
        self._title = title
        self._queue = EventQueue()

    @property
    def title(self) -> str:
        return self._title

    @property
    def devices(self) -> Sequence[DeviceInfo]:
        return self._devices

    @property
    def events(self) -> EventQueue:
        return self._queue

    def publish(self, event: Event) -> None:
        self._queue.put(event)

    def now(self) -> float:
        return time.time()

    def local_time(self, when: float) -> time.struct_time:
        return time.localtime(when)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def stored_history(self, limit: int = 5000) -> StoredHistory:
        return StoredHistory([], {})

    def _refuse(self, what: str) -> BackendError:
        return BackendError(f"{what}: the load benchmark runs no engine")

    def cancel(self, name: str) -> None:
        raise self._refuse("cancel")

    def retry(self, name: str) -> None:
        raise self._refuse("retry")

    def apply(self, name: str) -> None:
        raise self._refuse("apply")

    async def prefetch(self, names: Sequence[str] | None = None) -> list[DeviceFetch]:
        raise self._refuse("prefetch")

    async def export_history(self, path: Path, fmt: ExportFormat, device: str | None = None) -> int:
        raise self._refuse("export")

    async def content_list(self) -> list[ContentEntry]:
        return []

    def cached(self, device: str, item: PayloadItem) -> CachedFile | None:
        return None


# -- the event mix ------------------------------------------------------------------------------


class EventMix:
    """An endless, realistic stream of engine events for a fleet mid-rollout.

    Per 20 events: 8 `TransferProgress` (round robin over the ~200 downloading devices, 64 KiB a
    step of an 8 MiB file), 5 `ReportQueued` (download steps; 1 in 1000 an error,
    which the app pops up as a notice), 5
    `ReportsDelivered` (the oldest waiting reports of one device) and 2 `ConnectionChanged`
    (about 5% of the fleet flapping between connected and backoff). A finished download brings
    its own events (transfer finished, phases, INSTALL/INSTALLED_VERSION reports) and another
    device starts downloading in its place."""

    PATTERN = "PPPPPPPPRRRRRDDDDDCC"

    def __init__(self, devices: Sequence[DeviceInfo], downloading: int = 200, seed: int = 7):
        self.names = [d.name for d in devices]
        self.rng = random.Random(seed)
        step = max(1, len(self.names) // max(1, downloading))
        self.active = self.names[::step][:downloading]
        self.done = dict.fromkeys(self.active, 0)
        self.idle = deque(n for n in self.names if n not in self.done)
        self.pending: deque[tuple[str, int]] = deque()
        self.offline: set[str] = set()
        self.follow: deque[Event] = deque()
        self.outbox = 0
        self.slot = 0
        self.cursor = 0

    def seed(self, now: float) -> list[Event]:
        """The fleet's state before the flood: connected, offered NEW, ~200 downloading."""
        out: list[Event] = []
        for name in self.names:
            out.append(ConnectionChanged(device=name, time=now, protocol="mqtt", state="connected"))
            out.append(
                ManifestReceived(
                    device=name,
                    time=now,
                    version=NEW,
                    name="firmware",
                    type="URL_LIST",
                    items=(f"fw-{NEW}.bin",),
                    source="mqtt",
                )
            )
        for name in self.active:
            out += self._start(name, now)
        self.follow.clear()
        return out

    def _report(self, name: str, now: float, status: str, message: str = "") -> ReportQueued:
        self.outbox += 1
        self.pending.append((name, self.outbox))
        return ReportQueued(
            device=name,
            time=now,
            outbox_id=self.outbox,
            version=NEW,
            status=status,
            message=message,
            source="mqtt",
        )

    def _start(self, name: str, now: float) -> list[Event]:
        self.done[name] = 0
        return [
            PhaseChanged(device=name, time=now, phase="downloading", version=NEW),
            self._report(name, now, "DOWNLOAD"),
        ]

    def _finish(self, name: str, now: float) -> list[Event]:
        return [
            TransferFinished(device=name, time=now, file=f"fw-{NEW}.bin", ok=True, size=FILE_SIZE),
            PhaseChanged(device=name, time=now, phase="installing", version=NEW),
            self._report(name, now, "INSTALL"),
            self._report(name, now, "INSTALLED_VERSION"),
            PhaseChanged(device=name, time=now, phase="idle", installed_version=NEW),
        ]

    def next(self, now: float) -> Event:
        if self.follow:
            return self.follow.popleft()
        kind = self.PATTERN[self.slot % len(self.PATTERN)]
        self.slot += 1
        if kind == "D" and self.pending:
            return self._delivered(now)
        if kind == "R":
            return self._status(now)
        if kind == "C":
            return self._connection(now)
        return self._progress(now)

    def _progress(self, now: float) -> Event:
        i = self.cursor % len(self.active)
        self.cursor += 1
        name = self.active[i]
        done = min(FILE_SIZE, self.done[name] + CHUNK)
        self.done[name] = done
        if done >= FILE_SIZE:
            self.follow += self._finish(name, now)
            del self.done[name]
            self.idle.append(name)
            fresh = self.idle.popleft()
            self.active[i] = fresh
            self.follow += self._start(fresh, now)
        return TransferProgress(
            device=name,
            time=now,
            file=f"fw-{NEW}.bin",
            index=0,
            count=1,
            done=done,
            total=FILE_SIZE,
            rate=CHUNK * 10.0,
        )

    def _status(self, now: float) -> Event:
        if self.rng.random() < ERROR_SHARE:
            name = self.rng.choice(self.names)
            status = self.rng.choice(("DOWNLOAD_ERROR", "INSTALL_ERROR", "TEST_ERROR"))
            return self._report(name, now, status, "HTTP 503 from the content server")
        name = self.rng.choice(self.active)
        pct = 100 * self.done.get(name, 0) // FILE_SIZE
        return self._report(name, now, "DOWNLOAD_STEP", f"fw-{NEW}.bin {pct}%")

    def _delivered(self, now: float) -> Event:
        name, first = self.pending.popleft()
        ids = [first]
        while self.pending and self.pending[0][0] == name and len(ids) < 4:
            ids.append(self.pending.popleft()[1])
        return ReportsDelivered(device=name, time=now, outbox_ids=tuple(ids))

    def _connection(self, now: float) -> Event:
        if self.offline and (len(self.offline) >= len(self.names) // 20 or self.rng.random() < 0.5):
            name = self.rng.choice(sorted(self.offline))
            self.offline.discard(name)
            return ConnectionChanged(device=name, time=now, protocol="mqtt", state="connected")
        name = self.rng.choice(self.names)
        self.offline.add(name)
        return ConnectionChanged(
            device=name,
            time=now,
            protocol="mqtt",
            state="backoff",
            reason="connection refused",
            retry_at=now + self.rng.uniform(2, 30),
            attempt=self.rng.randint(1, 6),
        )


class Feeder:
    """Publishes `rate` events per second from a task in the app's loop (with catch-up)."""

    def __init__(self, backend: LoadBackend, mix: EventMix, rate: float) -> None:
        self.backend, self.mix, self.rate = backend, mix, rate
        self.sent = 0
        self.stalls: list[float] = []
        """How late each wake-up was (s): how long the loop was busy elsewhere."""

    async def run(self) -> None:
        t0 = time.perf_counter()
        base = self.sent
        while True:
            due = base + int((time.perf_counter() - t0) * self.rate)
            now = time.time()
            for _ in range(due - self.sent):
                self.backend.publish(self.mix.next(now))
            self.sent = max(self.sent, due)
            before = time.perf_counter()
            await asyncio.sleep(FEED_PERIOD_S)
            self.stalls.append(time.perf_counter() - before - FEED_PERIOD_S)


# -- the virtual screen -------------------------------------------------------------------------


class VirtualScreen:
    """What a terminal would show: every compositor update applied to a grid of cells."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.chars = [[" "] * width for _ in range(height)]
        self.styles: list[list[Style | None]] = [[None] * width for _ in range(height)]

    def apply(self, update: CompositorUpdate) -> None:
        if isinstance(update, LayoutUpdate):
            for y, line in enumerate(update.strips, update.region.y):
                x = update.region.x
                for strip in line:
                    x = self._put(strip, x, y)
        elif isinstance(update, ChopsUpdate):  # the same cropping as its render_segments
            for y, x1, x2 in update.spans:
                for end, (x, chop) in zip(
                    update.chop_ends[y], update.chops[y].items(), strict=False
                ):
                    if chop is None or x > x2 or end <= x1:
                        continue
                    if not (x2 > x >= x1 and end <= x2):
                        chop = chop.crop(0, min(end, x2) - x)
                    self._put(chop, x, y)

    def _put(self, strip: Strip, x: int, y: int) -> int:
        if not 0 <= y < self.height:
            return x
        chars, styles, width = self.chars[y], self.styles[y], self.width
        for segment in strip:
            if segment.control:
                continue
            style = segment.style
            for ch in segment.text:
                if 0 <= x < width:
                    chars[x], styles[x] = ch, style
                x += 1 if ch < "\u1100" else cell_len(ch)
        return x

    def line(self, y: int) -> str:
        return "".join(self.chars[y])

    def lines(self) -> list[str]:
        return ["".join(row) for row in self.chars]

    def background(self, x: int, y: int) -> Color | None:
        style = self.styles[y][x]
        return None if style is None else style.bgcolor

    def names(self) -> list[tuple[int, int, str]]:
        """(y, x, name) of every device name on screen, top to bottom."""
        out = []
        for y in range(self.height):
            m = NAME_RE.search(self.line(y))
            if m:
                out.append((y, m.start(), m.group()))
        return out


@dataclass
class Probe:
    """Sees every repaint; tells a waiting press when the screen shows its effect."""

    screen: VirtualScreen
    check: Callable[[], bool] | None = None
    seen: asyncio.Event = field(default_factory=asyncio.Event)
    seen_at: float = 0.0
    repaints: int = 0
    bytes: int = 0
    render_s: float = 0.0
    grid_s: float = 0.0
    drains: list[float] = field(default_factory=list)

    def arm(self, check: Callable[[], bool]) -> None:
        self.seen.clear()
        self.check = check

    def repainted(self, app: OtaApp, update: CompositorUpdate) -> None:
        t0 = time.perf_counter()
        self.bytes += len(update.render_segments(app.console))  # what a terminal is sent
        t1 = time.perf_counter()
        self.repaints += 1
        self.render_s += t1 - t0
        self.screen.apply(update)
        self.grid_s += time.perf_counter() - t1
        if self.check is not None and self.check():
            self.check = None
            self.seen_at = t1
            self.seen.set()


class MeasuredApp(OtaApp):
    """`OtaApp` unchanged but for two observation points: each drain is timed and each
    repaint goes to the `Probe` (after Textual's own `_display`)."""

    CSS_PATH = str(TCSS)  # relative CSS_PATH resolves against the subclass's module

    def __init__(self, backend: Backend, probe: Probe) -> None:
        self.probe = probe
        super().__init__(backend)

    def drain(self, *args: Any, **kwargs: Any) -> int:
        t0 = time.perf_counter()
        changed = super().drain(*args, **kwargs)
        self.probe.drains.append(time.perf_counter() - t0)
        return changed

    def _display(self, screen: Screen[Any], renderable: Any) -> None:
        super()._display(screen, renderable)
        if isinstance(renderable, CompositorUpdate):
            self.probe.repainted(self, renderable)


# -- key presses and what each should show ------------------------------------------------------


def key_event(key: str) -> events.Key:
    """The `Key` event a terminal's input thread would deliver (as Pilot builds it)."""
    original = REPLACED_KEYS.get(key, key)
    try:
        char: str | None = unicodedata.lookup(_get_unicode_name_from_key(original))
    except KeyError:
        char = key if len(key) == 1 else None
    return events.Key(key, char)


class Keyboard:
    """Presses keys on the running app and times each until its effect is on screen."""

    def __init__(self, app: MeasuredApp, fleet: FleetScreen, total: int) -> None:
        self.app, self.fleet, self.probe = app, fleet, app.probe
        self.vs = self.probe.screen
        self.total = total
        self.cursor_bg = self._cursor_background()

    # what is on the virtual screen

    def bar(self) -> str:
        for line in self.vs.lines():
            if " devices · state: " in line:
                return line
        return ""

    def highlighted(self) -> list[str]:
        return [n for y, x, n in self.vs.names() if self.vs.background(x, y) == self.cursor_bg]

    def _cursor_background(self) -> Color | None:
        selected = self.fleet.selected_name()
        rows = {n: (y, x) for y, x, n in self.vs.names()}
        if selected not in rows or len(rows) < 3:
            raise BenchError("the Fleet table is not on screen after start-up")
        y, x = rows[selected]
        bg = self.vs.background(x, y)
        others = {self.vs.background(x2, y2) for n, (y2, x2) in rows.items() if n != selected}
        if bg in others:
            raise BenchError("cannot tell the cursor row from the others on screen")
        return bg

    def table_shown(self) -> bool:
        """The device rows on screen are the table's rows from its scroll position on."""
        table = self.fleet.table
        names = [n for _y, _x, n in self.vs.names()]
        if table.row_count == 0 or not names:
            return table.row_count == 0 and not names
        try:
            first = table.get_row_index(names[0])
            indexes = [table.get_row_index(n) for n in names]
        except Exception:  # a name the table no longer holds: the picture is stale
            return False
        return first == int(table.scroll_offset.y) and indexes == list(
            range(first, first + len(names))
        )

    def bar_says(self, *parts: str) -> bool:
        bar = self.bar()
        count = f" {self.fleet.table.row_count}/{self.total} devices"
        return bar.startswith(count) and all(p in bar for p in parts)

    def on_fleet(self) -> bool:
        return self.app.screen is self.fleet

    # the effect each key should have

    def expect(self, key: str) -> Callable[[], bool]:
        fleet = self.fleet
        if isinstance(self.app.screen, DeviceScreen):
            if key != "escape":
                raise BenchError(f"{key}: no check for the device screen")
            name = self.app.screen.device_name
            return lambda: self.on_fleet() and self.highlighted() == [name] and bool(self.bar())
        if key == "down":
            before = fleet.selected_name()

            def moved() -> bool:
                name = fleet.selected_name()
                return name != before and self.highlighted() == [name]

            return moved
        if key == "slash":
            return lambda: any("filter: name, identity" in line for line in self.vs.lines())
        if key == "escape":
            return lambda: (
                fleet.filter_text == ""
                and fleet.state_filter is None
                and self.bar_says("state: all")
                and "filter:" not in self.bar()
                and not any("filter: name, identity" in line for line in self.vs.lines())
                and self.table_shown()
            )
        if len(key) == 1 and key.isalpha() and fleet.focused is not fleet.table:
            text = fleet.filter_text + key
            return lambda: (
                fleet.filter_text == text
                and self.bar_says(f"filter: {text}")
                and self.table_shown()
            )
        if key == "f":
            i = STATE_FILTERS.index(fleet.state_filter)
            category: Category | None = STATE_FILTERS[(i + 1) % len(STATE_FILTERS)]
            label = category.value if category else "all"
            return lambda: (
                fleet.state_filter is category
                and self.bar_says(f"state: {label}")
                and self.table_shown()
            )
        if key == "s":
            sort = SORTS[(SORTS.index(fleet.sort) + 1) % len(SORTS)]
            return lambda: (
                fleet.sort == sort and self.bar_says(f"sort: {sort}") and self.table_shown()
            )
        if key == "enter":
            selected = fleet.selected_name()
            return lambda: (
                isinstance(self.app.screen, DeviceScreen)
                and any(f"· Device {selected}" in line for line in self.vs.lines())
                and any(f"{selected}  identity" in line for line in self.vs.lines())
            )
        raise BenchError(f"{key}: no check for this key")

    async def press(self, key: str) -> float | None:
        """Seconds from the key to the repaint showing its effect (None: not within the limit)."""
        check = self.expect(key)
        if check():
            raise BenchError(f"{key}: its effect shows before the key is sent (a wrong check)")
        self.probe.arm(check)
        event = key_event(key)
        driver = self.app._driver
        assert driver is not None
        t0 = time.perf_counter()
        driver.send_message(event)
        try:
            await asyncio.wait_for(self.probe.seen.wait(), PRESS_TIMEOUT_S)
        except TimeoutError:
            self.probe.check = None
            return None
        return self.probe.seen_at - t0


# -- one run ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency_summary(samples: list[tuple[str, float | None]]) -> dict[str, Any]:
    ms = [(PRESS_TIMEOUT_S if s is None else s) * 1000 for _k, s in samples]
    by_key: dict[str, list[float]] = {}
    for (key, _s), value in zip(samples, ms, strict=True):
        by_key.setdefault(key, []).append(value)
    return {
        "presses": len(ms),
        "timeouts": sum(1 for _k, s in samples if s is None),
        "median_ms": statistics.median(ms),
        "p90_ms": percentile(ms, 0.9),
        "max_ms": max(ms),
        "min_ms": min(ms),
        "by_key_median_ms": {k: round(statistics.median(v), 1) for k, v in by_key.items()},
    }


async def wait_until(
    check: Callable[[], bool], within_s: float, what: str, app: OtaApp | None = None
) -> None:
    deadline = time.perf_counter() + within_s
    while not check():
        if app is not None and app._exception is not None:
            raise BenchError(f"{what}: the app failed: {app._exception!r}")
        if time.perf_counter() > deadline:
            raise BenchError(f"{what}: not within {within_s:.0f} s")
        await asyncio.sleep(0.01)


async def one_run(
    devices: int, rate: float, presses: int, *, flood: bool, profile: cProfile.Profile | None
) -> dict[str, Any]:
    """Start the app, (flood it), warm up, press `presses` keys, measure."""
    infos = make_devices(devices)
    backend = LoadBackend(infos)
    mix = EventMix(infos)
    for event in mix.seed(time.time()):
        backend.publish(event)
    probe = Probe(VirtualScreen(*SIZE))
    app = MeasuredApp(backend, probe)
    rng = random.Random(11)
    out: dict[str, Any] = {"flood": flood}
    async with app.run_test(size=SIZE):
        await wait_until(lambda: isinstance(app.screen, FleetScreen), 30, "the Fleet screen", app)
        fleet = app.screen
        assert isinstance(fleet, FleetScreen)
        await wait_until(
            lambda: len(probe.screen.names()) > 3, 30, "the Fleet table on screen", app
        )
        await asyncio.sleep(0.3)
        keyboard = Keyboard(app, fleet, devices)
        feeder = Feeder(backend, mix, rate)
        task = asyncio.create_task(feeder.run()) if flood else None
        deadline = time.perf_counter() + RUN_BUDGET_S
        try:
            for key in ROUND:  # warm-up, not recorded
                await keyboard.press(key)
                await asyncio.sleep(rng.uniform(0.15, 0.3))
                if time.perf_counter() > deadline:
                    break
            sent0, applied0 = feeder.sent, app.state.events_applied
            repaints0, bytes0 = probe.repaints, probe.bytes
            render0, grid0 = probe.render_s, probe.grid_s
            probe.drains.clear()
            feeder.stalls.clear()
            wall0, cpu0 = time.perf_counter(), time.process_time()
            if profile is not None:
                profile.enable()
            samples: list[tuple[str, float | None]] = []
            for n in range(presses):
                key = ROUND[n % len(ROUND)]
                samples.append((key, await keyboard.press(key)))
                if time.perf_counter() > deadline:
                    out["stopped"] = f"after {n + 1} presses: over {RUN_BUDGET_S:.0f} s"
                    break
                await asyncio.sleep(rng.uniform(0.15, 0.3))
            if profile is not None:
                profile.disable()
            wall = time.perf_counter() - wall0
            cpu = time.process_time() - cpu0
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        applied = app.state.events_applied - applied0
        sent = feeder.sent - sent0
        drains = probe.drains or [0.0]
        stalls = feeder.stalls or [0.0]
        out.update(latency_summary(samples))
        out.update(
            wall_s=round(wall, 2),
            cpu_s=round(cpu, 2),
            cpu_share=round(cpu / wall, 2),
            repaints_per_s=round((probe.repaints - repaints0) / wall, 1),
            terminal_kib_per_s=round((probe.bytes - bytes0) / wall / 1024, 1),
            render_segments_ms_per_s=round((probe.render_s - render0) / wall * 1000, 1),
            probe_overhead_ms_per_s=round((probe.grid_s - grid0) / wall * 1000, 1),
            drains=len(probe.drains),
            drain_median_ms=round(statistics.median(drains) * 1000, 2),
            drain_p90_ms=round(percentile(drains, 0.9) * 1000, 2),
            drain_max_ms=round(max(drains) * 1000, 2),
        )
        if flood:
            out.update(
                events_sent=sent,
                achieved_rate=round(sent / wall),
                events_applied=applied,
                applied_per_s=round(applied / wall),
                coalesced_share=round(1 - applied / sent, 3) if sent else 0.0,
                loop_stall_p50_ms=round(statistics.median(stalls) * 1000, 2),
                loop_stall_p99_ms=round(percentile(stalls, 0.99) * 1000, 2),
                loop_stall_max_ms=round(max(stalls) * 1000, 2),
            )
    return out


def apply_throughput(devices: int, count: int = 100_000) -> dict[str, Any]:
    """`FleetState.apply` alone on the same mix (no queue, no coalescing, no screen)."""
    infos = make_devices(devices)
    mix = EventMix(infos)
    state = FleetState(infos)
    now = time.time()
    state.apply_all(mix.seed(now))
    batch = [mix.next(now) for _ in range(count)]
    t0 = time.process_time()
    changed = state.apply_all(batch)
    cpu = time.process_time() - t0
    return {
        "events": count,
        "changed": changed,
        "cpu_s": round(cpu, 3),
        "events_per_s": round(count / cpu),
    }


def code_state() -> str:
    """The otatui measured: the checkout's commit (and whether `otatui/tui` had uncommitted
    changes then), or the folder it was imported from (a snapshot on PYTHONPATH)."""
    root = Path(__file__).resolve().parents[1]
    package = Path(otatui.tui.app.__file__).resolve().parents[2]
    if package != root:
        return f"otatui imported from {package}"
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "otatui/tui"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return f"{head} + uncommitted otatui/tui changes" if dirty else head


def run(devices: int = 1000, rate: int = 5000, presses: int = 40) -> dict[str, Any]:
    """Idle baseline, then the flood; each in a fresh app. Latencies in ms."""
    if presses < 1 or devices < 10 or rate <= 0:
        raise SystemExit("tui_load: need presses >= 1, devices >= 10, rate > 0")
    load_before = os.getloadavg()
    try:
        idle = asyncio.run(one_run(devices, rate, presses, flood=False, profile=None))
        flood = asyncio.run(one_run(devices, rate, presses, flood=True, profile=None))
    except BenchError as exc:
        raise SystemExit(f"tui_load: {exc}") from None
    return {
        "devices": devices,
        "rate": rate,
        "size": list(SIZE),
        "idle": idle,
        "flood": flood,
        "ratio_median": round(flood["median_ms"] / idle["median_ms"], 2),
        "goal_median_ms": GOAL_MS,
        "met": flood["median_ms"] <= GOAL_MS and flood["timeouts"] == 0 and "stopped" not in flood,
        "state_apply": apply_throughput(devices),
        "code": code_state(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def profile_run(devices: int, rate: int, presses: int, *, flood: bool, top: int = 30) -> str:
    """One run under cProfile (measured window only): the top functions, two ways."""
    prof = cProfile.Profile()
    result = asyncio.run(one_run(devices, rate, presses, flood=flood, profile=prof))
    text = io.StringIO()
    text.write(
        f"profiled {'flood' if flood else 'idle'} run (latencies inflated by the profiler): median "
        f"{result['median_ms']:.1f} ms, cpu {result['cpu_s']} s over {result['wall_s']} s\n"
    )
    stats = pstats.Stats(prof, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return text.getvalue()


def describe(r: dict[str, Any]) -> str:
    idle, flood = r["idle"], r["flood"]
    lines = [
        f"TUI under load: {r['devices']} devices, {SIZE[0]}x{SIZE[1]}, "
        f"{flood['presses']} presses per side",
        f"  flood: {flood['achieved_rate']} events/s sent (target {r['rate']}), "
        f"{flood['applied_per_s']} applied/s by FleetState ({flood['coalesced_share']:.0%} "
        f"coalesced in the queue), cpu {flood['cpu_s']} s / {flood['wall_s']} s wall",
        f"  key -> repaint under flood: median {flood['median_ms']:.1f} ms, p90 "
        f"{flood['p90_ms']:.1f}, max {flood['max_ms']:.1f}, timeouts {flood['timeouts']}",
        f"  key -> repaint idle:        median {idle['median_ms']:.1f} ms, p90 "
        f"{idle['p90_ms']:.1f}, max {idle['max_ms']:.1f}, timeouts {idle['timeouts']}",
        *(
            f"  STOPPED {side}: {r[side]['stopped']}"
            for side in ("idle", "flood")
            if "stopped" in r[side]
        ),
        f"  ratio flood/idle (median): {r['ratio_median']:.2f}x; goal median <= "
        f"{GOAL_MS:.0f} ms: {'met' if r['met'] else 'NOT met'}",
        f"  per key (median ms) flood: {flood['by_key_median_ms']}",
        f"  per key (median ms) idle:  {idle['by_key_median_ms']}",
        f"  drain (apply + redraw) flood: median {flood['drain_median_ms']} ms, p90 "
        f"{flood['drain_p90_ms']}, max {flood['drain_max_ms']}; idle cpu {idle['cpu_s']} s / "
        f"{idle['wall_s']} s",
        f"  loop stalls under flood: p50 {flood['loop_stall_p50_ms']} ms, p99 "
        f"{flood['loop_stall_p99_ms']}, max {flood['loop_stall_max_ms']}; repaints/s "
        f"{flood['repaints_per_s']} (idle {idle['repaints_per_s']})",
        f"  FleetState.apply alone: {r['state_apply']['events_per_s']} events/s (cpu)",
        f"  measuring cost (in the CPU above): render_segments "
        f"{flood['render_segments_ms_per_s']} ms/s, virtual screen "
        f"{flood['probe_overhead_ms_per_s']} ms/s under flood",
        f"  load average before {r['load_before']}, after {r['load_after']}; code {r['code']}",
    ]
    return "\n".join(lines)


def summary_row(r: dict[str, Any]) -> tuple[str, str, str, str, str, bool]:
    """One table row for ``python -m bench``: benchmark, ours, baseline, ratio, goal, met."""
    flood, idle = r["flood"], r["idle"]
    return (
        f"TUI {r['devices']} devices, {flood['achieved_rate']} events/s: key -> repaint",
        f"median {flood['median_ms']:.0f} ms (p90 {flood['p90_ms']:.0f}, "
        f"max {flood['max_ms']:.0f})",
        f"no flood: median {idle['median_ms']:.0f} ms",
        f"{r['ratio_median']:.2f}x",
        f"median <= {GOAL_MS:.0f} ms",
        bool(r["met"]),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/tui_load.py", description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=5000, help="engine events per second")
    parser.add_argument("--presses", type=int, default=40, help="recorded presses per side")
    parser.add_argument("--repeat", type=int, default=1, help="whole runs; medians printed")
    parser.add_argument(
        "--profile",
        choices=("flood", "idle"),
        default=None,
        help="also one run (with or without the flood) under cProfile",
    )
    parser.add_argument("--json", default=None, help="write the raw figures here")
    args = parser.parse_args(argv)
    results = []
    for n in range(args.repeat):
        r = run(args.devices, args.rate, args.presses)
        results.append(r)
        print(f"run {n + 1}/{args.repeat}\n{describe(r)}", flush=True)
    if args.repeat > 1:
        med = {
            side: {
                k: statistics.median(r[side][k] for r in results)
                for k in ("median_ms", "p90_ms", "max_ms")
            }
            for side in ("idle", "flood")
        }
        print(f"medians over {args.repeat} runs: {json.dumps(med)}")
    if args.profile:
        print(profile_run(args.devices, args.rate, args.presses, flood=args.profile == "flood"))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
