"""The key bindings of the Manifests, Transfers and History screens, by id.

Same shape as `otatui.tui.keys.KEYS` (a ``[keys]`` table in the config remaps them by id). When
the app's table defines an id too, its entry wins, so the two never disagree.
"""

from __future__ import annotations

from textual.binding import Binding, BindingType

from otatui.tui.keys import BY_ID, Key, binding

CATALOGUE_KEYS: tuple[Key, ...] = (
    # manifests
    Key("manifests.prefetch", "p", "prefetch", "Prefetch"),
    Key("manifests.content", "c", "toggle_content", "Content list"),
    Key("manifests.reload", "r", "reload_content", "Reload list"),
    # transfers
    Key("transfers.open", "enter", "open_device", "Open device"),
    Key("transfers.finished", "f", "toggle_finished", "Finished"),
    # history
    Key("history.filter", "slash", "filter", "Filter"),
    Key("history.errors", "x", "toggle_errors", "Errors"),
    Key("history.unsent", "u", "toggle_unsent", "Unsent"),
    Key("history.export", "e", "export", "Export"),
    Key("history.open", "enter", "open_device", "Open", explain="open the entry's device"),
    Key("history.clear", "escape", "clear_filter", "Clear", show=False),
)

_OWN = {k.id: k for k in CATALOGUE_KEYS}


def catalogue_bindings(*ids: str) -> list[BindingType]:
    """The `Binding`s for these ids (the app's table first, then `CATALOGUE_KEYS`)."""
    out: list[BindingType] = []
    for binding_id in ids:
        if binding_id in BY_ID:
            out.append(binding(binding_id))
            continue
        k = _OWN[binding_id]
        out.append(
            Binding(k.key, k.action, k.description, show=k.show, priority=k.priority, id=k.id)
        )
    return out
