"""The frozen app for snapshot tests and screenshots: fixed clock, fixed sample data, no cursor
blink, no animation. ``app`` at module level lets `snap_compare("otatui/tui/snapshot_app.py")`
load it by path."""

from __future__ import annotations

from collections.abc import Mapping

from otatui.tui.app import OtaApp
from otatui.tui.frozen import FrozenBackend


def snapshot_app(*, keys: Mapping[str, str] | None = None, no_color: bool = False) -> OtaApp:
    """A fresh frozen app over a fresh `FrozenBackend`."""
    return OtaApp(FrozenBackend(), keys=keys, no_color=no_color, frozen=True)


app = snapshot_app()

if __name__ == "__main__":
    app.run()
