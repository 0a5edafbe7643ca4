"""The header (site name, screen, fleet and connection summary) and the footer (the focused
screen's bindings) that every screen shows."""

from __future__ import annotations

from textual.widgets import Footer, Static

from otatui.tui.records import Category
from otatui.tui.state import FleetState


def summary_text(state: FleetState, width: int = 80) -> str:
    """``!! 4 attention  >> 4 updating  ok 3 up to date  -- 1 offline | 10/12 connected``,
    shortened to fit `width`."""
    counts = state.counts()
    total = len(state.devices)
    connected = state.connection_counts().get("connected", 0)
    long = "  ".join(f"{c.marker} {counts[c]} {c.value}" for c in Category)
    text = f"{long} | {connected}/{total} connected"
    if len(text) <= width:
        return text
    short = " ".join(f"{c.marker}{counts[c]}" for c in Category)
    return f"{short} | {connected}/{total} conn"


class OtaHeader(Static):
    """One line: ``otatui <site> · <screen>`` on the left, the fleet summary on the right."""

    DEFAULT_CSS = """
    OtaHeader { dock: top; height: 1; }
    """

    def __init__(self, screen_title: str = "") -> None:
        super().__init__("", id="header", markup=False)
        self.screen_title = screen_title
        self._drawn: tuple[int, int] | None = None

    def show_state(self, site: str, state: FleetState) -> None:
        """Redraw when the state or the width changed."""
        width = self.size.width or 80
        key = (state.version, width)
        if key == self._drawn:
            return
        self._drawn = key
        left = f" otatui {site} · {self.screen_title}"
        right = summary_text(state, max(20, width - len(left) - 3)) + " "
        pad = max(1, width - len(left) - len(right))
        self.update(left + " " * pad + right)


def ota_header(screen_title: str = "") -> OtaHeader:
    return OtaHeader(screen_title)


def ota_footer() -> Footer:
    return Footer()
