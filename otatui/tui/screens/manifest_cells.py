"""How the Manifests screen reads: table cells of versions and content ids, the detail panel of
one version, and the one-line prefetch summary (every state also as a text marker, styles toned
down under ``--no-color``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text

from otatui.engine.prefetch import DeviceFetch, FileState
from otatui.otau.payload import PayloadSource
from otatui.tui import cells
from otatui.tui.catalogue import CacheState, ContentRow, ManifestGroup, PayloadEntry
from otatui.tui.cells import tone
from otatui.tui.screens.table_cells import texts

MANIFEST_COLUMNS: tuple[tuple[str, str], ...] = (
    ("now", "Now"),
    ("version", "Version"),
    ("name", "Name"),
    ("cache", "Cache"),
    ("files", "Files"),
    ("devices", "Off/Inst/Fail"),
    ("type", "Type"),
)
CONTENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("pkg", "Pkg"),
    ("id", "Content id"),
    ("size", "Size"),
    ("used", "Used by"),
    ("description", "Description"),
    ("type", "Type"),
    ("updated", "Updated"),
)
NAME_CHARS = 20
NAMES_SHOWN = 24


def cache_cell(state: CacheState, files: int, mono: bool = False) -> Text:
    if files == 0:
        return Text("- no files")
    style = {CacheState.CACHED: "green", CacheState.MISSING: "yellow"}.get(state, "")
    return Text(f"{state.marker} {state.value}", style=tone(style, mono))


def group_cells(g: ManifestGroup, mono: bool = False) -> tuple[Text, ...]:
    name = g.name if g.valid else "!! invalid"
    if len(name) > NAME_CHARS:
        name = name[: NAME_CHARS - 1] + "…"
    return texts(
        (
            Text("now", style="bold") if g.current else Text("past", style="dim"),
            g.version,
            Text(name, style="" if g.valid else tone("bold red", mono)),
            cache_cell(g.cache, len(g.items), mono),
            str(len(g.items)) + (" !" if g.unpinned else ""),
            devices_cell(g, mono),
            g.type or "-",
        )
    )


def devices_cell(g: ManifestGroup, mono: bool = False) -> Text:
    """``offered/installed/failed`` counts; a failure also gets a ``!`` (monochrome)."""
    text = Text(f"{len(g.offered_to)}/{len(g.installed_on)}/")
    if g.failed_on:
        text.append(f"{len(g.failed_on)} !", style=tone("bold red", mono))
    else:
        text.append("0")
    return text


def item_lines(e: PayloadEntry, mono: bool = False) -> Text:
    """Two lines per payload item: what and its state, then where it comes from."""
    text = Text("  ")
    if e.source is None:
        text.append("!! invalid item", style=tone("bold red", mono))
        text.append(f"\n      {e.problem}")
        return text
    text.append(
        f"{e.cache.marker} ", style=tone("green", mono) if e.cache is CacheState.CACHED else ""
    )
    text.append(e.filename, style="bold")
    text.append(f"  {cells.size(e.size)}  ")
    if e.pinned:
        text.append(e.pin_text)
    else:
        text.append("! UNPINNED", style=tone("yellow", mono))
    text.append(f"  {e.cache.value}")
    where = (
        f'connector content "{e.where}"'
        if e.source is PayloadSource.CONTENT
        else f"external host {e.where}"
    )
    text.append(f"\n      from {where}", style="dim")
    return text


def devices_line(label: str, names: Sequence[str], style: str = "", mono: bool = False) -> Text:
    """``Offered to      a, b, c`` (at most `NAMES_SHOWN` names, then how many more)."""
    shown = ", ".join(names[:NAMES_SHOWN]) or "-"
    if len(names) > NAMES_SHOWN:
        shown += f" … and {len(names) - NAMES_SHOWN} more"
    line = Text(f"{label:<16}", style="bold")
    line.append(shown, style=tone(style, mono) if shown != "-" else "")
    return line


def group_detail(g: ManifestGroup, clock: Any, mono: bool = False) -> Text:
    """The panel below the table for one version."""
    head = Text(g.version, style="bold")
    if g.valid:
        head.append(f'  "{g.name}"  {g.type}')
    head.append("  · offered now" if g.current else "  · not offered now")
    seen = clock(g.last_seen)
    if clock(g.first_seen) != seen:
        seen = f"{clock(g.first_seen)} to {seen}"
    parts = [head, Text(f"offered {seen}", style="dim")]
    if not g.valid:
        parts.append(Text(f"!! invalid manifest: {g.reason}", style=tone("bold red", mono)))
    if g.description:
        parts.append(Text(g.description))
    if g.items:
        total = cells.size(g.size) if g.size is not None else "size not known"
        unpinned = f", {g.unpinned} unpinned" if g.unpinned else ""
        parts.append(Text(f"Files: {len(g.items)} ({total}{unpinned})", style="bold"))
        parts.extend(item_lines(e, mono) for e in g.items)
    elif g.valid:
        parts.append(Text("Files: none (a JSON manifest carries its data itself)"))
    parts.append(devices_line("Offered to", g.offered_to))
    parts.append(devices_line("Installed on", g.installed_on))
    parts.append(devices_line("Failed on", g.failed_on, "bold red", mono))
    parts.append(devices_line("Offered before", g.previously_offered))
    return Text("\n").join(parts)


def content_cells(row: ContentRow, clock: Any, mono: bool = False) -> tuple[Text, ...]:
    description: Text | str = row.description
    if row.error:
        description = Text(f"!! {row.error}", style=tone("bold red", mono))
    return texts(
        (
            Text("PKG", style="bold") if row.package else "-",
            row.content_id,
            cells.size(row.size) if row.size is not None else "?",
            ", ".join(row.used_by) or "-",
            description,
            row.content_type or "?",
            clock(row.updated) if row.updated is not None else "?",
        )
    )


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def prefetch_summary(version: str, results: list[DeviceFetch]) -> str:
    """One line: how many files are ready, how many failed (and the first reason)."""
    files = [f for r in results for f in r.files]
    got = sum(1 for f in files if f.state is FileState.DOWNLOADED)
    had = sum(1 for f in files if f.state is FileState.CACHED)
    failed = [f for f in files if f.state is FileState.FAILED]
    errors = [f"{r.device}: {r.error}" for r in results if r.error]
    errors += [f"{f.filename}: {f.error}" for f in failed]
    line = f"prefetch {version}: {plural(got + had, 'file')} ready"
    line += f" ({got} downloaded, {had} already cached)"
    if errors:
        line = f"!! {line}, {plural(len(errors), 'problem')}; first: {errors[0]}"
    return line
