"""Every key binding of the TUI, by id; the config's ``[keys]`` table remaps them.

Each binding has an id (``<screen>.<action>``, e.g. ``fleet.filter``); ``[keys]`` in the
configuration maps an id to one or more keys (``"fleet.filter" = "ctrl+f"``, several keys
comma-separated), applied with Textual's keymap. `binding(id)` builds the `Binding` from the
table below, so a screen declares ``BINDINGS = [binding("fleet.filter"), ...]`` and the help
screen and README list the same table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True, slots=True)
class Key:
    id: str
    key: str
    action: str
    description: str
    show: bool = True
    priority: bool = False
    explain: str = ""
    """A longer description (README table); the footer shows `description`."""


KEYS: tuple[Key, ...] = (
    # everywhere
    Key("app.fleet", "1", "app.switch_mode('fleet')", "Fleet", show=False),
    Key("app.manifests", "2", "app.switch_mode('manifests')", "Manifests", show=False),
    Key("app.transfers", "3", "app.switch_mode('transfers')", "Transfers", show=False),
    Key("app.history", "4", "app.switch_mode('history')", "History", show=False),
    Key("app.help", "question_mark,f1", "app.switch_mode('help')", "Help"),
    Key(
        "app.palette",
        "ctrl+p",
        "command_palette",
        "Commands",
        show=False,
        priority=True,
        explain="the command palette: the current screen's commands",
    ),
    Key("app.quit", "q", "app.quit", "Quit"),
    # fleet
    Key("fleet.open", "enter,o", "open_device", "Open", explain="open the selected device"),
    Key(
        "fleet.filter",
        "slash",
        "filter",
        "Filter",
        explain="filter by text (name, identity, version, status)",
    ),
    Key(
        "fleet.state",
        "f",
        "cycle_state",
        "State",
        explain="cycle the state filter: all, needs attention, updating, up to date, offline",
    ),
    Key(
        "fleet.sort",
        "s",
        "cycle_sort",
        "Sort",
        explain="cycle the order: name, state, last seen, progress",
    ),
    Key(
        "fleet.clear",
        "escape",
        "clear_filter",
        "Clear",
        show=False,
        explain="clear the text and state filters",
    ),
    Key(
        "fleet.prefetch",
        "p",
        "prefetch_all",
        "Prefetch",
        show=False,
        explain="download every offered payload into the cache",
    ),
    # device
    Key("device.back", "escape", "back", "Back", explain="back to the fleet"),
    Key(
        "device.apply",
        "a",
        "apply",
        "Apply",
        explain="install the update waiting for you (asks first)",
    ),
    Key(
        "device.cancel",
        "c",
        "cancel",
        "Cancel",
        explain="abort the update in progress (asks first)",
    ),
    Key(
        "device.retry",
        "r",
        "retry",
        "Retry",
        explain="start the offered manifest again after a failure",
    ),
    Key(
        "device.prefetch",
        "p",
        "prefetch",
        "Prefetch",
        explain="download the device's payload into the cache",
    ),
    # modal
    Key("confirm.yes", "y", "confirm", "Yes"),
    Key("confirm.no", "n,escape", "dismiss_modal", "No"),
)

BY_ID: Mapping[str, Key] = {k.id: k for k in KEYS}


def shown_key(binding_id: str, keymap: Mapping[str, str] | None = None) -> str:
    """The first key of a binding as a person reads it (``?``, ``ctrl+r``), following the
    config's ``[keys]`` remap (a binding id of `KEYS` or of the catalogue screens)."""
    default = next(k.key for k in all_keys() if k.id == binding_id)
    keys = (keymap or {}).get(binding_id) or default
    return key_label(keys.split(",")[0])


def binding(binding_id: str) -> Binding:
    """The `Binding` for an id of `KEYS`."""
    k = BY_ID[binding_id]
    return Binding(k.key, k.action, k.description, show=k.show, priority=k.priority, id=k.id)


BindingList = list[Binding | tuple[str, str] | tuple[str, str, str]]
"""The type of Textual's ``BINDINGS`` class variable."""


def bindings(*ids: str) -> BindingList:
    return [binding(i) for i in ids]


def all_keys() -> tuple[Key, ...]:
    """`KEYS` and the other screens' tables (``screens.catalogue_keys.CATALOGUE_KEYS`` when
    present; an id defined in both is listed once, as in `KEYS`)."""
    try:
        from otatui.tui.screens.catalogue_keys import CATALOGUE_KEYS
    except ImportError:
        return KEYS
    return KEYS + tuple(k for k in CATALOGUE_KEYS if k.id not in BY_ID)


def unknown_ids(keymap: Mapping[str, str]) -> list[str]:
    """Ids in a ``[keys]`` table that name no binding (a typo would silently do nothing)."""
    return sorted(set(keymap) - {k.id for k in all_keys()})


def key_label(key: str) -> str:
    """A key as people write it: ``question_mark`` -> ``?``, ``slash`` -> ``/``."""
    names = {"question_mark": "?", "slash": "/", "escape": "Esc", "enter": "Enter"}
    return ", ".join(names.get(k.strip(), k.strip()) for k in key.split(","))


def bindings_markdown() -> str:
    """The bindings as a Markdown table (for the README): key, what it does, id."""
    lines = ["| Key | Screen | Does | Binding id |", "|---|---|---|---|"]
    for k in all_keys():
        scope = k.id.split(".", 1)[0]
        key = key_label(k.key).replace("|", "\\|")
        lines.append(f"| `{key}` | {scope} | {k.explain or k.description} | `{k.id}` |")
    return "\n".join(lines)
