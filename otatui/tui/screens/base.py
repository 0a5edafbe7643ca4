"""The base of every top-level screen: access to the app's state and backend, a state refresh
hook called by the app after each batch of events, and commands for the palette."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from textual.notifications import SeverityLevel
from textual.screen import Screen

if TYPE_CHECKING:
    from otatui.tui.app import OtaApp
    from otatui.tui.backend import Backend
    from otatui.tui.state import FleetState


@dataclass(frozen=True, slots=True)
class ScreenCommand:
    """One command palette entry offered by the current screen."""

    title: str
    help: str
    callback: Callable[[], object]
    action: str = ""
    """The screen action it runs, when it should follow that action's availability."""


class StateScreen(Screen[None]):
    """A screen fed by the app's `FleetState` (override `refresh_state` and `screen_commands`).

    `ready` turns True once the screen is mounted (after the subclass's own `on_mount`, which
    Textual runs first): until then the app does not ask it to redraw (its widgets may not
    exist yet), and it redraws once when it becomes ready.
    """

    ready: bool = False

    @property
    def ota(self) -> OtaApp:
        return cast("OtaApp", self.app)

    @property
    def state(self) -> FleetState:
        return self.ota.state

    @property
    def backend(self) -> Backend:
        return self.ota.backend

    def on_mount(self) -> None:
        """Runs after the subclass's `on_mount` (Textual walks the MRO, subclass first)."""
        self.ready = True
        if self.app.screen is self:
            self.ota.refresh_screen()

    def on_screen_resume(self) -> None:
        """Shown (again): draw the header and whatever changed while hidden."""
        if self.ready:
            self.ota.refresh_screen()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Textual's notify, but plain text by default (like `OtaApp.notify`): messages carry
        paths, versions and errors that must never be read as markup."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def refresh_state(self) -> None:
        """Called after the app applied a batch of events (and once a second for clocks).

        Compare `self.state.version` with what was drawn last and redraw only what changed.
        """

    def screen_commands(self) -> Iterable[ScreenCommand]:
        """Commands for the palette while this screen is shown."""
        return ()
