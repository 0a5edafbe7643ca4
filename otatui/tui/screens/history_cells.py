"""How the History screen reads: the cells of one history entry (failures marked ``!!``, reports
not yet confirmed by the connector ``unsent``; styles toned down under ``--no-color``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich.cells import cell_len
from rich.text import Text

from otatui.tui.cells import tone
from otatui.tui.history_filter import is_error
from otatui.tui.records import NOT_SENT, SENT, HistoryEntry
from otatui.tui.screens.table_cells import texts
from otatui.tui.widgets.row_table import Column

COLUMNS: tuple[Column, ...] = (
    Column("time", "Time", 14),
    Column("device", "Device", 6, 32),
    Column("dir", "Dir", 3),
    Column("version", "Version", 7, 20),
    Column("status", "Status", 14, 24),
    Column("cloud", "Cloud", 6),
    Column("source", "Source", 6, 12),
    Column("message", "Message", 20),
)
"""Widths fit the usual values; device, version, status and source widen up to a maximum
(`widths`); the message takes the rest of the line."""
DIRECTION_WORDS = {"in": "in", "out": "out", "local": "loc"}
CLOUD_WORDS = {SENT: "sent", NOT_SENT: "unsent"}
MESSAGE_CHARS = 200


def status_cell(e: HistoryEntry, mono: bool = False) -> Text:
    """The status, ``manifest`` for an offer, ``error`` for a local error; ``!!`` on failures."""
    if e.resource == "config_otau":
        word = "manifest"
        if e.note.startswith("rejected"):
            return Text("!! rejected", style=tone("bold red", mono))
    elif e.resource == "error":
        word = "error"
    else:
        word = e.status or "-"
    if is_error(e):
        return Text(f"!! {word}", style=tone("bold red", mono))
    return Text(word)


def cloud_cell(e: HistoryEntry, mono: bool = False) -> Text:
    word = CLOUD_WORDS.get(e.cloud, e.cloud or "-")
    return Text(word, style=tone("yellow", mono) if e.cloud == NOT_SENT else "")


def message_text(e: HistoryEntry) -> str:
    text = e.message
    if e.note and e.note not in text:
        text = f"{text} ({e.note})" if text else e.note
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def widths(e: HistoryEntry) -> Iterable[tuple[str, int]]:
    """The widths an entry's variable cells need (from its strings, nothing drawn)."""
    yield "device", cell_len(e.device)
    yield "version", cell_len(e.version or "-")
    if e.status:
        yield "status", cell_len(e.status) + (3 if is_error(e) else 0)  # "!! " on a failure
    yield "source", cell_len(e.source or "-")


def row_cells(
    e: HistoryEntry, clock: Callable[[float], str], mono: bool = False
) -> tuple[Text, ...]:
    """The cells of one entry, in `COLUMNS` order (every one a `Text`: a message or a version
    holding ``[...]`` is shown as it is, never read as markup)."""
    return texts(
        (
            clock(e.time),
            e.device,
            DIRECTION_WORDS.get(e.direction, e.direction),
            e.version or "-",
            status_cell(e, mono),
            cloud_cell(e, mono),
            e.source or "-",
            message_text(e),
        )
    )
