"""The app's top-level screens (Textual modes), in one place another module can extend.

Each `TopScreen` is a mode: its name, its title and the factory that builds it. The Manifests,
Transfers and History screens are imported if present (each module defines ``ManifestsScreen``,
``TransfersScreen``, ``HistoryScreen``: a `StateScreen` subclass built with no arguments); a
missing one shows a placeholder naming it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.widgets import Static

from otatui.tui.screens.base import StateScreen
from otatui.tui.widgets.chrome import ota_footer, ota_header


@dataclass(frozen=True, slots=True)
class TopScreen:
    mode: str
    title: str
    factory: Callable[[], StateScreen]


class MissingScreen(StateScreen):
    """Stands in for a screen whose module is not there."""

    def __init__(self, title: str, problem: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.problem = problem

    def compose(self) -> ComposeResult:
        yield ota_header(self.title_text)
        text = f"The {self.title_text} screen is not available in this build."
        if self.problem:
            text += f"\n{self.problem}"
        yield Static(text, id="missing", markup=False)
        yield ota_footer()


def _optional(module: str, cls: str, title: str) -> Callable[[], StateScreen]:
    try:
        found = getattr(importlib.import_module(module), cls)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return lambda: MissingScreen(title)
        missing = f"{module} cannot be loaded: {exc}"
        return lambda: MissingScreen(title, missing)
    except Exception as exc:  # a broken screen must not take the whole app down
        problem = f"{module} cannot be loaded: {type(exc).__name__}: {exc}"
        return lambda: MissingScreen(title, problem)
    if not (isinstance(found, type) and issubclass(found, StateScreen)):
        return lambda: MissingScreen(title)
    factory: Callable[[], StateScreen] = found
    return factory


def top_screens() -> list[TopScreen]:
    """Every top-level screen, in the order of their keys (1, 2, 3, 4, ?)."""
    from otatui.tui.screens.fleet import FleetScreen
    from otatui.tui.screens.help import HelpScreen

    return [
        TopScreen("fleet", "Fleet", FleetScreen),
        TopScreen(
            "manifests",
            "Manifests",
            _optional("otatui.tui.screens.manifests", "ManifestsScreen", "Manifests"),
        ),
        TopScreen(
            "transfers",
            "Transfers",
            _optional("otatui.tui.screens.transfers", "TransfersScreen", "Transfers"),
        ),
        TopScreen(
            "history",
            "History",
            _optional("otatui.tui.screens.history", "HistoryScreen", "History"),
        ),
        TopScreen("help", "Help", HelpScreen),
    ]
