"""The Textual app: screens as modes, events drained in batches, keys remapped from the config.

`OtaApp(backend, keys=..., no_color=...)` starts the backend, seeds its `FleetState` from the
stored history, and drains the backend's event queue at most ten times a second, applying each
batch at once and then asking only the visible screen to redraw what changed. Progress floods are
already coalesced by the engine's `EventQueue`, so a tick handles at most one progress event per
file in flight plus the non-replaceable events, and key presses stay snappy.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from typing import ClassVar

from textual.app import App, SystemCommand
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.notifications import SeverityLevel
from textual.screen import Screen

from otatui.engine.events import ConnectionChanged
from otatui.tui.backend import Backend, BackendError
from otatui.tui.keys import bindings, unknown_ids
from otatui.tui.notices import notices
from otatui.tui.registry import TopScreen, top_screens
from otatui.tui.screens.base import StateScreen
from otatui.tui.state import FleetState
from otatui.tui.widgets.chrome import OtaHeader

TICK_S = 0.1
"""How often waiting events are drained (10 Hz at most)."""
NOTICE_S = 4.0
"""How long a pop-up notice stays: short, it covers the table at 80x24; what it says stays in
the device's timeline and the history."""
CLOCK_S = 1.0
"""How often the visible screen redraws for clocks (last seen, retry countdowns)."""


SYSTEM_WEIGHT = 0.8
"""A general command's match score is scaled by this, so the screen's commands come first."""


class ScreenCommands(Provider):
    """The command palette's one provider: the current screen's commands (its
    `screen_commands`) first, then the general ones (go to a screen, keys, theme, quit...)
    in the order Textual gives them (Posting's order: what this screen does comes first).

    One provider, because the palette shows discovery hits in the order they arrive, and hits
    of several providers arrive in no fixed order."""

    def _commands(self) -> list[tuple[str, str, Callable[[], object], bool]]:
        """(title, help, callback, is the screen's own)."""
        screen = self.screen
        out: list[tuple[str, str, Callable[[], object], bool]] = []
        if isinstance(screen, StateScreen):
            out += [(c.title, c.help, c.callback, True) for c in screen.screen_commands()]
        general = sorted(self.app.get_system_commands(screen), key=lambda c: c.title)
        out += [(c.title, c.help, c.callback, False) for c in general if c.discover]
        return out

    async def discover(self) -> Hits:
        for title, help_text, callback, _own in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback, own in self._commands():
            score = matcher.match(title)
            if score > 0:
                score = score if own else score * SYSTEM_WEIGHT
                yield Hit(score, matcher.highlight(title), callback, help=help_text)


@contextlib.contextmanager
def _no_color_env(enabled: bool) -> Iterator[None]:
    """Textual reads NO_COLOR when the app is built; `--no-color` sets it for that moment."""
    if not enabled or "NO_COLOR" in os.environ:
        yield
        return
    os.environ["NO_COLOR"] = "1"
    try:
        yield
    finally:
        os.environ.pop("NO_COLOR", None)


class OtaApp(App[None]):
    """The otatui terminal UI over a `Backend`."""

    CSS_PATH = "otatui.tcss"
    TITLE = "otatui"
    # ScreenCommands also yields Textual's system commands (it replaces their provider)
    COMMANDS: ClassVar[set[type[Provider] | Callable[[], type[Provider]]]] = {ScreenCommands}
    BINDINGS = bindings(
        "app.fleet",
        "app.manifests",
        "app.transfers",
        "app.history",
        "app.help",
        "app.palette",
        "app.quit",
    )

    def __init__(
        self,
        backend: Backend,
        *,
        keys: Mapping[str, str] | None = None,
        no_color: bool = False,
        frozen: bool = False,
    ) -> None:
        self.backend = backend
        self.state = FleetState(backend.devices, clock=backend.now)
        self.frozen = frozen
        """Snapshot mode: no timers that change the picture, no cursor blink, no animation."""
        self.screens_available: list[TopScreen] = top_screens()
        with _no_color_env(no_color):
            super().__init__()
        self.title = backend.title
        self.keys = dict(keys or {})
        self.key_problems = unknown_ids(self.keys)
        if frozen:
            self.animation_level = "none"
        for top in self.screens_available:
            self.add_mode(top.mode, top.factory)
        self.start_error = ""

    # -- start and stop ------------------------------------------------------------------------

    async def on_mount(self) -> None:
        if self.keys:
            self.set_keymap(self.keys)
        if self.key_problems:
            self.notify(
                "unknown key binding ids in [keys]: " + ", ".join(self.key_problems),
                severity="warning",
            )
        try:
            await self.backend.start()
            stored = self.backend.stored_history()
            self.state.load_history(stored.rows, stored.outbox)
        except BackendError as exc:
            self.start_error = str(exc)
            self.notify(str(exc), severity="error", timeout=30)
            self._engine_down(str(exc))
        self.drain(notify=False)  # what happened before the app opened is on the screens
        await self.switch_mode("fleet")
        # what exists now (the app, the screens, the seeded state) lives as long as the app:
        # keep it out of the garbage collector's full passes, which otherwise walk all of it
        # (40-70 ms with a thousand devices: a stall a key press would wait for)
        gc.collect()
        gc.freeze()
        self.set_interval(TICK_S, self.drain, name="drain events")
        if not self.frozen:
            self.set_interval(CLOCK_S, self._clock_tick, name="clock")

    def _engine_down(self, reason: str) -> None:
        """Every device says why nothing happens: the engine did not start."""
        now = self.backend.now()
        for d in self.state.devices.values():
            self.state.apply(
                ConnectionChanged(
                    device=d.name,
                    time=now,
                    protocol=d.info.protocol,
                    state="stopped",
                    reason=f"the engine did not start: {reason}",
                )
            )

    async def on_unmount(self) -> None:
        gc.unfreeze()  # what was kept out can be collected again once the app is gone
        with contextlib.suppress(BackendError):
            await self.backend.stop()

    # -- events --------------------------------------------------------------------------------

    def drain(self, *, notify: bool = True) -> int:
        """Apply every waiting event in one batch; redraw the visible screen if anything
        changed; pop up what needs the technician (`notices`). Returns how many events
        changed something."""
        events = self.backend.events.drain()
        if not events:
            return 0
        changed = self.state.apply_all(events)
        if changed:
            self.refresh_screen()
        if notify:
            for n in notices(events):
                self.notify(n.message, severity=n.severity, timeout=NOTICE_S)
        return changed

    def _clock_tick(self) -> None:
        self.refresh_screen(clock=True)

    def refresh_screen(self, *, clock: bool = False) -> None:
        """Redraw the visible screen; a screen just pushed but not yet mounted is skipped (its
        widgets may not exist yet): it redraws itself once ready (`StateScreen.ready`)."""
        screen = self.screen
        if isinstance(screen, StateScreen) and not screen.ready:
            return
        for header in screen.query(OtaHeader):
            header.show_state(self.backend.title, self.state, self.current_mode, self.keys)
        if isinstance(screen, StateScreen):
            screen.refresh_state()

    # -- commands ------------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for top in self.screens_available:
            yield SystemCommand(
                f"Go to {top.title}",
                f"Show the {top.title} screen",
                partial(self.run_switch, top.mode),
            )

    def run_switch(self, mode: str) -> None:
        self.call_later(self.action_switch_mode, mode)

    async def action_switch_mode(self, mode: str) -> None:
        if mode != self.current_mode:
            await self.switch_mode(mode)
            self.refresh_screen()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Textual's notify, but plain text by default: messages carry names, versions and
        errors that come from the cloud, never to be read as markup."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    # -- engine actions (never block: errors become notifications) -----------------------------

    def command(self, what: str, name: str) -> bool:
        """Run `cancel`, `retry` or `apply` for a device; False (and a notice) on refusal."""
        actions = {
            "cancel": self.backend.cancel,
            "retry": self.backend.retry,
            "apply": self.backend.apply,
        }
        try:
            actions[what](name)
        except BackendError as exc:
            self.notify(str(exc), severity="error")
            return False
        self.notify(f"{what}: sent to {name}")
        return True

    def prefetch(self, names: list[str] | None) -> None:
        """Download the offered payloads of these devices (None: all) in a worker."""

        async def run() -> None:
            try:
                results = await self.backend.prefetch(names)
            except BackendError as exc:
                self.notify(f"prefetch: {exc}", severity="error")
                return
            failed = [r.device for r in results if not r.ok]
            files = sum(len(r.files) for r in results)
            if failed:
                self.notify(
                    f"prefetch: {files} files; failed for {', '.join(failed)}", severity="warning"
                )
            else:
                self.notify(f"prefetch: {files} files in the cache")

        self.notify("prefetch: started")
        self.run_worker(run(), name="prefetch", group="prefetch")
