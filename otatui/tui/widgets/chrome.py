"""The header (site name, screen, fleet and connection summary) and the footer (the focused
screen's bindings) that every screen shows."""

from __future__ import annotations

from rich.text import Text
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


TABS: tuple[tuple[str, str, str], ...] = (
    ("1", "fleet", "Fleet"),
    ("2", "manifests", "Manifests"),
    ("3", "transfers", "Transfers"),
    ("4", "history", "History"),
    ("?", "help", "Help"),
)


def tabs_text(current_mode: str) -> Text:
    """``1 Fleet  2 Manifests ...`` with the current screen in brackets (and reversed)."""
    out = Text(" ")
    for key, mode, title in TABS:
        if mode == current_mode:
            out.append(f"[{key} {title}]", style="reverse bold")
        else:
            out.append(f" {key} {title} ")
        out.append(" ")
    return out


class OtaHeader(Static):
    """Two lines: ``otatui <site> · <screen>`` and the fleet summary, then the screen tabs."""

    DEFAULT_CSS = """
    OtaHeader { dock: top; height: 2; }
    """

    def __init__(self, screen_title: str = "") -> None:
        super().__init__("", id="header", markup=False)
        self.screen_title = screen_title
        self._drawn: tuple[int, int, str] | None = None
        self._shown: tuple[str, str] | None = None

    def show_state(self, site: str, state: FleetState, mode: str = "") -> None:
        """Redraw when the state, the width or the mode changed."""
        width = self.size.width or 80
        key = (state.version, width, mode)
        if key == self._drawn:
            return
        self._drawn = key
        left = f" otatui {site} · {self.screen_title}"
        right = summary_text(state, max(20, width - len(left) - 3)) + " "
        pad = max(1, width - len(left) - len(right))
        plain = left + " " * pad + right
        if (plain, mode) == self._shown:
            return  # the counts did not change: no repaint
        self._shown = (plain, mode)
        text = Text(plain + "\n", style="bold")
        text.append_text(tabs_text(mode))
        self.update(text, layout=False)  # two lines, always: no layout pass


def ota_header(screen_title: str = "") -> OtaHeader:
    return OtaHeader(screen_title)


def ota_footer() -> Footer:
    return Footer()
