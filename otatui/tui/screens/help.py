"""The Help screen: every key binding (as remapped by the config) and the statuses in plain
words."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from otatui.otau.status import Status
from otatui.tui.cells import NOT_SENT_MARK, STATE_STYLES, tone
from otatui.tui.keys import all_keys, key_label
from otatui.tui.records import Category
from otatui.tui.screens.base import StateScreen
from otatui.tui.widgets.chrome import ota_footer, ota_header

_SCOPES = {
    "app": "Everywhere",
    "fleet": "Fleet",
    "device": "Device",
    "manifests": "Manifests",
    "transfers": "Transfers",
    "history": "History",
    "confirm": "Confirmation",
}
_CATEGORY_HELP = {
    Category.ATTENTION: "failed, invalid manifest, refused or stopped, or waiting for your apply",
    Category.UPDATING: "testing, downloading, installing or pushing over a link",
    Category.UP_TO_DATE: "connected and nothing in progress",
    Category.OFFLINE: "cannot reach the connector now; it retries by itself",
}


def bindings_text(keymap: Mapping[str, str]) -> Text:
    """The bindings table: key (after `[keys]` remapping), what it does, and its id."""
    out = Text()
    out.append("Keys (remap any of them in the configuration: ")
    out.append('[keys] "fleet.filter" = "ctrl+f"', style="bold")
    out.append(")\n")
    scope = ""
    for k in all_keys():
        head = k.id.split(".", 1)[0]
        if head != scope:
            scope = head
            out.append(f"\n{_SCOPES.get(head, head)}\n", style="bold underline")
        key = key_label(keymap.get(k.id, k.key))
        out.append(f"  {key:<12} {k.description:<12} ")
        out.append(f"{k.id}\n", style="dim")
    return out


def statuses_text(mono: bool = False) -> Text:
    out = Text()
    out.append("\nDevice states (colour and marker)\n", style="bold underline")
    for c in Category:
        out.append(f"  {c.marker} {c.value:<16}", style=tone(STATE_STYLES[c], mono))
        out.append(f" {_CATEGORY_HELP[c]}\n")
    out.append(f"\n  A status followed by '{NOT_SENT_MARK.strip()}' waits in the outbox: ")
    out.append("not yet sent to the cloud.\n")
    out.append("\nUpdate statuses (otau_in)\n", style="bold underline")
    for s in Status:
        style = tone("bold red" if s.is_error else "", mono)
        out.append(f"  {s.value:<18}", style=style)
        out.append(f" {s.meaning}\n")
    return out


class HelpScreen(StateScreen):
    """Bindings and statuses."""

    def compose(self) -> ComposeResult:
        yield ota_header("Help")
        with VerticalScroll(id="help-body"):
            yield Static(id="help-bindings", markup=False)
            yield Static(statuses_text(self.app.no_color), id="help-statuses", markup=False)
        yield ota_footer()

    def on_mount(self) -> None:
        self.query_one("#help-bindings", Static).update(bindings_text(self.ota.keys))
        self.query_one("#help-body").focus()
