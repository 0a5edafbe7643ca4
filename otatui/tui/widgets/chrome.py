"""The header (site name, screen, fleet and connection summary) and the footer (the focused
screen's bindings) that every screen shows."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.widgets import Footer, Static

from otatui.tui.keys import shown_key
from otatui.tui.records import Category
from otatui.tui.state import FleetState

_WORDS: dict[Category, tuple[str, str, str]] = {
    # (one, several, short)
    Category.ATTENTION: ("needs attention", "need attention", "attention"),
    Category.UPDATING: ("updating", "updating", "updating"),
    Category.UP_TO_DATE: ("up to date", "up to date", "ok"),
    Category.OFFLINE: ("offline", "offline", "offline"),
}


def summaries(state: FleetState) -> list[str]:
    """The fleet summary from the most to the least spelled out, zero counts left out:
    ``4 need attention · 4 updating · 3 up to date · 1 offline · 10/12 connected`` down to
    ``!!4 >>4 ok3 --1``."""
    counts = state.counts()
    total = len(state.devices)
    connected = f"{state.connection_counts().get('connected', 0)}/{total} connected"
    shown = [c for c in Category if counts[c]]

    def words(short_ok: bool, short_all: bool) -> str:
        parts = []
        for c in shown:
            one, several, short = _WORDS[c]
            word = one if counts[c] == 1 else several
            if short_all or (short_ok and c is Category.UP_TO_DATE):
                word = short
            parts.append(f"{counts[c]} {word}")
        return " · ".join([*parts, connected])

    markers = " ".join(f"{c.marker}{counts[c]}" for c in shown)
    return [
        words(False, False),
        words(True, False),
        words(True, True),
        f"{markers} · {connected}",
        markers,
    ]


def summary_text(state: FleetState, width: int = 80) -> str:
    """The most spelled-out summary (`summaries`) that fits `width` (else the shortest)."""
    options = summaries(state)
    return next((s for s in options if len(s) <= width), options[-1])


def header_line(site: str, screen_title: str, state: FleetState, width: int) -> str:
    """``otatui <site> · <screen>`` left, the summary right: the summary as spelled out as the
    width allows, dropping ``otatui`` and then the screen's name (the tabs and the screen show
    it) before shortening it; the site's name is never cut."""
    title = f" · {screen_title}" if screen_title else ""
    lefts = [f" otatui {site}{title}", f" {site}{title}", f" {site}"]
    options = summaries(state)
    for summary in options:
        for left in lefts:
            if len(left) + 1 + len(summary) + 1 <= width:
                return left + " " * (width - len(left) - len(summary) - 1) + summary + " "
    return f"{lefts[-1]} {options[-1]} "


TABS: tuple[tuple[str, str, str], ...] = (
    ("app.fleet", "fleet", "Fleet"),
    ("app.manifests", "manifests", "Manifests"),
    ("app.transfers", "transfers", "Transfers"),
    ("app.history", "history", "History"),
    ("app.help", "help", "Help"),
)
"""(binding id, mode, title) of each screen tab."""


def tabs_text(current_mode: str, keys: Mapping[str, str] | None = None) -> Text:
    """``1 Fleet  2 Manifests ...`` with the current screen in brackets (and reversed); each
    tab shows its key as the config's ``[keys]`` remaps it."""
    out = Text(" ")
    for binding_id, mode, title in TABS:
        key = shown_key(binding_id, keys)
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

    def show_state(
        self,
        site: str,
        state: FleetState,
        mode: str = "",
        keys: Mapping[str, str] | None = None,
    ) -> None:
        """Redraw when the state, the width or the mode changed (`keys`: the config's
        ``[keys]`` remap, for the tabs' keys)."""
        width = self.size.width or 80
        key = (state.version, width, mode)
        if key == self._drawn:
            return
        self._drawn = key
        plain = header_line(site, self.screen_title, state, width)
        if (plain, mode) == self._shown:
            return  # the counts did not change: no repaint
        self._shown = (plain, mode)
        text = Text(plain + "\n", style="bold")
        text.append_text(tabs_text(mode, keys))
        self.update(text, layout=False)  # two lines, always: no layout pass


def ota_header(screen_title: str = "") -> OtaHeader:
    return OtaHeader(screen_title)


def ota_footer() -> Footer:
    return Footer()
