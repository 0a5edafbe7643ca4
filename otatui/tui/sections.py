"""The text of each Device screen section, built from a `DeviceView` (rich `Text`, no widgets).

Nothing here does I/O: the cache state comes from a lookup the screen passes in (the backend's).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.text import Text

from otatui.otau.payload import PayloadItem, PayloadItemError, PayloadSource
from otatui.otau.status import Status
from otatui.transfer import CachedFile
from otatui.tui import cells
from otatui.tui.records import NOT_SENT, DeviceView, FileTransfer

CacheLookup = Callable[[str, PayloadItem], CachedFile | None]
LocalTime = Callable[[float], time.struct_time]
CONFIG_OTAU = "config_otau"
OUTPUT_SHOWN = 12
TIMELINE_SHOWN = 30


def _head(out: Text, title: str) -> None:
    out.append(f"{title}\n", style="bold underline")


def title_text(d: DeviceView, *, mono: bool = False) -> Text:
    out = Text()
    c = d.category
    out.append(f"{c.marker} {c.value}", style=cells.tone(cells.STATE_STYLES[c], mono))
    out.append(f"  {d.name}", style="bold")
    out.append(f"  identity {d.info.identity} · {d.info.role} · {d.info.route}")
    if d.info.link and d.info.link != d.info.link_kind:
        out.append(f" ({d.info.link})")
    if d.info.apply == "confirm":
        out.append(" · apply: confirm")
    out.append(f"\ninstalled {d.installed_version or '?'}")
    if d.offered is not None:
        out.append(f" · offered {d.offered.version or '?'}")
    if d.last_status is not None:
        out.append(f" · last {d.last_status} {d.last_status_version or ''}".rstrip())
        if d.last_status_sent is False:
            out.append(f" ({NOT_SENT})", style="italic")
    return out


def connection_text(d: DeviceView, now: float, *, mono: bool = False, retry_key: str = "r") -> Text:
    out = Text()
    _head(out, "Now")
    why = d.why(now, retry_key=retry_key)
    out.append(why + "\n", style="bold")
    out.append(f"connector: {d.connection} over {d.info.protocol}")
    if d.connection_reason and d.connection_reason not in why:
        out.append(f" ({d.connection_reason})")
    if d.connection == "backoff":
        wait = "soon" if d.retry_at is None else f"in {max(0, round(d.retry_at - now))} s"
        out.append(f"; next try {wait}, attempt {d.attempt}")
    out.append(f"; last seen {cells.ago(d.last_seen, now)}\n")
    if d.info.link:
        out.append(f"link: {d.link_state or 'not opened'}")
        if d.link_detail:
            out.append(f" ({d.link_detail})")
        out.append("\n")
    if d.info.role == "monitor":
        out.append("role: monitor, reads only (no phase, nothing is sent)")
    else:
        out.append(f"phase: {d.phase}")
    if d.awaiting_apply is not None:
        out.append(
            f" · waiting for apply of {d.awaiting_apply}", style=cells.tone("bold red", mono)
        )
    if d.error:
        out.append("\nerror: ", style=cells.tone("bold red", mono))
        out.append(d.error)
    return out


def manifest_text(d: DeviceView, cached: CacheLookup, *, mono: bool = False) -> Text:
    out = Text()
    _head(out, "Offered manifest")
    m = d.offered
    if m is None:
        out.append("none offered yet")
        return out
    if not m.valid:
        out.append(f"{m.version or '?'}: not valid: {m.reason}", style=cells.tone("bold red", mono))
        return out
    out.append(f'"{m.name}" {m.version} ({m.type}) from {m.source or "?"}\n')
    if m.description:
        out.append(f"{m.description}\n", style="italic")
    if not m.items:
        out.append("no files to download (the payload is the manifest itself)")
        return out
    sizes = {t.file: t.size or t.total for t in d.transfers.values()}
    for entry in m.payload():
        if isinstance(entry, PayloadItemError):
            out.append(f"  invalid item: {entry}\n", style=cells.tone("bold red", mono))
            continue
        out.append_text(_item_line(d, entry, cached, sizes, mono))
    return out


def _item_line(
    d: DeviceView,
    item: PayloadItem,
    cached: CacheLookup,
    sizes: dict[str, int | None],
    mono: bool,
) -> Text:
    line = Text("  ")
    line.append(item.filename, style="bold")
    if item.source is PayloadSource.CONTENT:
        line.append("  connector content")
    else:
        line.append(f"  external {item.host or '?'}")
    hit = cached(d.name, item)
    size = hit.size if hit is not None else sizes.get(item.filename)
    line.append(f"  {cells.size(size)}")
    line.append("  cached" if hit is not None else "  not cached")
    if item.sha256 is not None:
        line.append(f"  sha256 {item.sha256[:12]}…")
    else:
        line.append("  unpinned (no sha256 pin)", style=cells.tone("yellow", mono))
    line.append("\n")
    return line


def transfer_text(d: DeviceView, *, mono: bool = False) -> Text:
    out = Text()
    _head(out, "Transfer")
    if not d.transfers:
        out.append("nothing moved yet")
        return out
    # a file known only from its end (no progress seen: count 1) takes its place from the manifest
    names = (
        [p.filename for p in d.offered.payload() if isinstance(p, PayloadItem)]
        if (d.offered is not None)
        else []
    )

    def place(t: FileTransfer) -> tuple[int, int]:
        if t.count == 1 and t.file in names:
            return names.index(t.file), len(names)
        return t.index, t.count

    for t in sorted(d.transfers.values(), key=lambda t: (t.direction, place(t))):
        verb = "download" if t.direction == "download" else "push"
        index, count = place(t)
        out.append(f"  {verb} {t.file} ({index + 1}/{count}) ")
        if t.finished:
            style = "bold red" if t.outcome == "failed" else ""
            if t.outcome == "stopped":  # cut short: how far it got, not the file's size
                moved = f"at {cells.size(t.done)} of {cells.size(t.size or t.total)}"
            else:
                moved = cells.size(t.size or t.total)
            out.append(f"{t.outcome} {moved}", style=cells.tone(style, mono))
            if t.message and t.outcome == "failed":
                out.append(f": {t.message}")
        else:
            out.append(cells.bar(t.fraction))
            out.append(f"  {cells.size(t.done)} of {cells.size(t.total)}")
            out.append(f"  {cells.rate(t.rate)}  ETA {cells.duration(t.eta)}")
        if t.resumed:
            at = f" (at {cells.size(t.resumed_at)})" if t.resumed_at is not None else ""
            out.append(f"  resumed ×{t.resumed}{at}")
        out.append("\n")
    return out


def output_text(d: DeviceView, local: LocalTime, *, mono: bool = False) -> Text:
    out = Text()
    _head(out, "Install output")
    if not d.output:
        out.append("none")
        return out
    for line in list(d.output)[-OUTPUT_SHOWN:]:
        out.append(time.strftime("%H:%M:%S ", local(line.time)), style="dim")
        out.append(f"{line.line}\n")
    return out


def timeline_text(d: DeviceView, local: LocalTime, *, mono: bool = False) -> Text:
    out = Text()
    _head(out, "Timeline (otau_in, config_otau)")
    if not d.timeline:
        out.append("nothing yet")
        return out
    for e in reversed(list(d.timeline)[-TIMELINE_SHOWN:]):
        out.append(time.strftime("%m-%d %H:%M:%S ", local(e.time)), style="dim")
        arrow = "<-" if e.direction == "in" else "->"
        out.append(f"{arrow} {e.resource:<11} {e.version or '-':<8} ")
        if e.status:
            is_error = e.status in Status.__members__ and Status(e.status).is_error
            out.append(f"{e.status:<17}", style=cells.tone("bold red", mono) if is_error else "")
        else:  # a manifest in (or a local event): a word here, the whole message at the end
            rejected = e.note.startswith("rejected")
            word = "rejected" if rejected else ("manifest" if e.resource == CONFIG_OTAU else "")
            word = word or e.resource
            out.append(f"{word:<17}", style=cells.tone("bold red", mono) if rejected else "")
        out.append(f" {e.source}")
        if e.cloud:
            out.append(f" · {e.cloud}", style="italic" if e.cloud == NOT_SENT else "")
        if e.message:
            out.append(f" · {e.message}")
        out.append("\n")
    return out
