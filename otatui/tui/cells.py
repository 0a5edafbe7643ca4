"""How values read in a table cell: state with colour AND a text marker, progress bars, sizes,
rates, durations and times (readable in 16 colours and in monochrome)."""

from __future__ import annotations

import time

from rich.text import Text

from otatui.tui.records import Category, DeviceView

STATE_STYLES = {
    Category.ATTENTION: "bold red",
    Category.UPDATING: "yellow",
    Category.UP_TO_DATE: "green",
    Category.OFFLINE: "cyan",
}
CONNECTION_WORDS = {
    "connected": "connected",
    "connecting": "connecting",
    "backoff": "retrying",
    "auth_failed": "refused",
    "stopped": "stopped",
    "unknown": "-",
}
BAR_WIDTH = 10
NOT_SENT_MARK = " *"
"""After a status that is not yet sent to the cloud (the help screen explains it)."""


SHORT_WORDS = {
    Category.ATTENTION: "attention",
    Category.UPDATING: "updating",
    Category.UP_TO_DATE: "up to date",
    Category.OFFLINE: "offline",
}


_ATTRIBUTES = frozenset({"bold", "italic", "underline", "dim", "reverse", "strike"})
_LOUD = frozenset({"red"})


def tone(style: str, mono: bool) -> str:
    """`style`, or in monochrome (``--no-color``) its attributes only, a loud colour becoming
    bold: Textual's monochrome filter turns red into a dark grey that is hard to read."""
    if not mono:
        return style
    words = style.split()
    kept = [w for w in words if w in _ATTRIBUTES]
    if any(w in _LOUD for w in words) and "bold" not in kept:
        kept.append("bold")
    return " ".join(kept)


def state_cell(category: Category, *, short: bool = False, mono: bool = False) -> Text:
    """Marker and words (``!! needs attention``; short: ``!! attention``) in the state's
    colour."""
    word = SHORT_WORDS[category] if short else category.value
    return Text(f"{category.marker} {word}", style=tone(STATE_STYLES[category], mono))


def connection_cell(d: DeviceView, now: float, *, mono: bool = False) -> Text:
    word = CONNECTION_WORDS.get(d.connection, d.connection)
    if d.connection == "backoff" and d.retry_at is not None:
        word = f"retry {max(0, round(d.retry_at - now))}s"
    style = "" if d.connection == "connected" else "cyan"
    if d.connection == "auth_failed":
        style = "bold red"
    return Text(word, style=tone(style, mono))


def status_cell(d: DeviceView, *, mono: bool = False) -> Text:
    if d.last_status is None:
        return Text("-")
    status = d.status
    style = "bold red" if status is not None and status.is_error else ""
    text = d.last_status + (NOT_SENT_MARK if d.last_status_sent is False else "")
    return Text(text, style=tone(style, mono))


def bar(fraction: float | None, width: int = BAR_WIDTH) -> str:
    """``██████░░░░  60%`` (or blank when nothing moves)."""
    if fraction is None:
        return ""
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * width)
    return "█" * filled + "░" * (width - filled) + f" {round(fraction * 100):3d}%"


def progress_cell(d: DeviceView) -> str:
    return bar(d.progress)


def ago(when: float | None, now: float) -> str:
    """``5s ago``, ``3m ago``, ``2h ago``, ``4d ago`` or ``-``."""
    if when is None:
        return "-"
    s = max(0, round(now - when))
    if s < 60:
        return f"{s}s ago"
    if s < 3600:
        return f"{s // 60}m ago"
    if s < 86400:
        return f"{s // 3600}h ago"
    return f"{s // 86400}d ago"


def size(n: int | None) -> str:
    """``512 B``, ``1.5 KiB``, ``5.3 MiB`` or ``?``."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def rate(bytes_per_s: float) -> str:
    return f"{size(round(bytes_per_s))}/s" if bytes_per_s > 0 else "-"


def duration(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``1h02m`` or ``-``."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def clock(t: time.struct_time) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", t)
