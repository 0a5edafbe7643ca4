"""Which history entries the History screen shows, from what the technician types.

Pure Python (no Textual). Words match anywhere in an entry (device, version, status, message,
source, note; case-insensitive; every word must match); tokens narrow: ``device:NAME``,
``source:LABEL``, ``dir:in|out|local``, ``is:error``, ``is:unsent``.
"""

from __future__ import annotations

from dataclasses import dataclass

from otatui.otau.status import Status
from otatui.tui.records import NOT_SENT, HistoryEntry

ERROR_STATUSES = frozenset(s.value for s in Status if s.is_error)


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """Which history entries to show; the empty filter shows everything.

    `parse` reads what the technician types: words match anywhere (device, version, status,
    message, source, note; case-insensitive, all words must match), and these tokens narrow:
    ``device:NAME``, ``source:LABEL``, ``dir:in|out|local``, ``is:error``, ``is:unsent``.
    """

    text: tuple[str, ...] = ()
    device: str | None = None
    errors_only: bool = False
    source: str | None = None
    direction: str | None = None
    unsent_only: bool = False

    @classmethod
    def parse(cls, query: str) -> HistoryFilter:
        words: list[str] = []
        device = source = direction = None
        errors = unsent = False
        for token in query.split():
            key, sep, value = token.partition(":")
            key = key.lower()
            if sep and value and key == "device":
                device = value
            elif sep and value and key == "source":
                source = value.lower()
            elif sep and value and key == "dir":
                direction = value.lower()
            elif sep and key == "is" and value.lower() in ("error", "errors"):
                errors = True
            elif sep and key == "is" and value.lower() in ("unsent", "pending"):
                unsent = True
            else:
                words.append(token.casefold())
        return cls(tuple(words), device, errors, source, direction, unsent)

    @property
    def empty(self) -> bool:
        return self == HistoryFilter()

    def describe(self) -> str:
        """The filter in words, for the line above the table."""
        parts = [f'"{w}"' for w in self.text]
        if self.device:
            parts.append(f"device {self.device}")
        if self.source:
            parts.append(f"source {self.source}")
        if self.direction:
            parts.append(f"direction {self.direction}")
        if self.errors_only:
            parts.append("errors only")
        if self.unsent_only:
            parts.append("not yet sent")
        return ", ".join(parts) if parts else "everything"

    def matches(self, entry: HistoryEntry) -> bool:
        if self.device is not None and entry.device != self.device:
            return False
        if self.source is not None and entry.source.lower() != self.source:
            return False
        if self.direction is not None and entry.direction != self.direction:
            return False
        if self.errors_only and not is_error(entry):
            return False
        if self.unsent_only and entry.cloud != NOT_SENT:
            return False
        if self.text:
            haystack = searchable(entry)
            return all(w in haystack for w in self.text)
        return True


def is_error(entry: HistoryEntry) -> bool:
    """An error report, or a local error event."""
    return entry.status in ERROR_STATUSES or entry.resource == "error"


def searchable(entry: HistoryEntry) -> str:
    parts = (
        entry.device,
        entry.version or "",
        entry.status or "",
        entry.message,
        entry.source,
        entry.note,
        entry.resource,
        entry.cloud,
    )
    return "\n".join(parts).casefold()
