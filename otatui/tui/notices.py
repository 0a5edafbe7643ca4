"""Which engine events deserve a pop-up notice: an update waiting for the technician's apply,
and a failed update. At most `MAX_NOTICES` per batch, then one line counting the rest, so a
thousand failures at once do not bury the screen."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from textual.notifications import SeverityLevel

from otatui.otau.status import Status

MAX_NOTICES = 3
_FAILURES = frozenset(s.value for s in Status if s.is_error and s is not Status.INSTALL_ABORTED)


@dataclass(frozen=True, slots=True)
class Notice:
    message: str
    severity: SeverityLevel


def notice_of(event: object) -> Notice | None:
    """The notice an event deserves, or None."""
    kind = getattr(event, "kind", "")
    device = getattr(event, "device", "?")
    if kind == "awaiting_apply":
        version = getattr(event, "version", "the update")
        return Notice(f"{device}: {version} is ready and waits for you to apply it", "warning")
    status = getattr(event, "status", "")
    if kind in ("report", "observed") and status in _FAILURES:
        message = getattr(event, "message", "")
        text = f"{device}: {status} {getattr(event, 'version', '')}".rstrip()
        return Notice(f"{text}: {message}" if message else text, "error")
    return None


def notices(events: Iterable[object], limit: int = MAX_NOTICES) -> list[Notice]:
    """The notices of a batch, at most `limit` and then one counting the others."""
    found = [n for n in (notice_of(e) for e in events) if n is not None]
    if len(found) <= limit:
        return found
    rest = len(found) - limit
    return [*found[:limit], Notice(f"and {rest} more (see the fleet and history)", "warning")]
