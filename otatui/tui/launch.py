"""Open the TUI on a configuration (what `otatui` and `otatui run` without --headless do)."""

from __future__ import annotations

import os

from otatui.config import Config
from otatui.tui.app import OtaApp
from otatui.tui.backend import Backend, FleetBackend


def run_tui(config: Config, *, no_color: bool = False, backend: Backend | None = None) -> int:
    """Run the app until the technician quits; returns the exit code (0, or 1 when the engine
    could not start)."""
    app = OtaApp(
        backend if backend is not None else FleetBackend(config),
        keys=config.keys,
        no_color=no_color or "NO_COLOR" in os.environ,
    )
    app.run()
    return 1 if app.start_error else 0


async def run_tui_async(
    config: Config, *, no_color: bool = False, backend: Backend | None = None
) -> int:
    """`run_tui` inside a running event loop (e.g. the demo, which serves its simulated site
    in the same loop): the app runs with `App.run_async`."""
    app = OtaApp(
        backend if backend is not None else FleetBackend(config),
        keys=config.keys,
        no_color=no_color or "NO_COLOR" in os.environ,
    )
    await app.run_async()
    return 1 if app.start_error else 0
