"""`otatui history`: every history row, oldest first, as a table, JSON lines or CSV.

Each row carries its source label (``mqtt``, ``http``, ``serial``, ``lan``, ``local``...) and, for
what a device sends to the cloud (``out`` rows), whether the connector has confirmed it: ``sent``
or ``not yet sent``; other rows have an empty ``cloud``. JSON and CSV keep the stored values raw
(unix times, the exact text of each value); the table is for reading. Every line goes through a
redaction callable before it is written, so a configured token can never leave the process.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

from otatui.engine.overview import CONFIG_OTAU, OTAU_IN, format_time, printable
from otatui.otau.manifest import Manifest, parse_manifest
from otatui.otau.status import StatusReport
from otatui.store import HistoryRow, StoreReader

SENT = "sent"
NOT_SENT = "not yet sent"
FIELDS = (
    "id",
    "time",
    "device",
    "direction",
    "resource",
    "version",
    "status",
    "source",
    "cloud",
    "delivered_at",
    "note",
    "value",
)
_TABLE_HEADERS = ("TIME", "DEVICE", "DIR", "RESOURCE", "VERSION", "STATUS", "SOURCE", "CLOUD")
DETAIL_CHARS = 80
TABLE_PAGE = 500

Redact = Callable[[str], str]


def cloud_state(row: HistoryRow) -> str:
    """``sent`` / ``not yet sent`` for what goes to the cloud, ``""`` for everything else."""
    if row.direction != "out":
        return ""
    return SENT if row.delivered_at is not None else NOT_SENT


def row_dict(row: HistoryRow) -> dict[str, Any]:
    """One row as plain data with the raw stored values, in `FIELDS` order."""
    data: dict[str, Any] = {
        "id": row.id,
        "time": row.time,
        "device": row.device,
        "direction": row.direction,
        "resource": row.resource,
        "version": row.version,
        "status": row.status,
        "source": row.source,
        "cloud": cloud_state(row),
        "delivered_at": row.delivered_at,
        "note": row.note,
        "value": row.value,
    }
    return data


def history_rows(store: StoreReader | None, device: str | None = None) -> Iterator[HistoryRow]:
    """All rows (of one device), oldest first, read page by page; none without a store."""
    if store is None:
        return iter(())
    return store.iter_history(device=device)


def write_json_lines(rows: Iterable[HistoryRow], out: TextIO, redact: Redact) -> int:
    count = 0
    for row in rows:
        out.write(redact(json_line(row)) + "\n")
        count += 1
    return count


def json_line(row: HistoryRow) -> str:
    """The row as one JSON object; non-UTF-8 bytes kept in a value (lone surrogates) are
    written as ``\\u`` escapes so the line stays valid UTF-8."""
    line = json.dumps(row_dict(row), ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(row_dict(row), ensure_ascii=True)
    return line


def write_csv(rows: Iterable[HistoryRow], out: TextIO, redact: Redact) -> int:
    """A header row then one CSV record per history row (``""`` for missing values)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def flush() -> None:
        out.write(redact(buffer.getvalue()))
        buffer.seek(0)
        buffer.truncate()

    writer.writerow(FIELDS)
    count = 0
    for row in rows:
        data = row_dict(row)
        writer.writerow(["" if data[f] is None else data[f] for f in FIELDS])
        count += 1
        if count % 500 == 0:
            flush()
    flush()
    return count


def write_table(rows: Iterable[HistoryRow], out: TextIO, redact: Redact) -> int:
    """An aligned table; what each row says (message, manifest name, note) on the right.

    Streams: the column widths come from the header and the first `TABLE_PAGE` rows, later
    rows use the same widths (a longer cell just pushes its line to the right), so a history of
    any length is written without holding it in memory.
    """
    header: tuple[str, ...] = (*_TABLE_HEADERS, "DETAIL")
    first: list[tuple[str, ...]] = []
    widths: list[int] | None = None
    count = 0
    for row in rows:
        count += 1
        cells = _cells(row)
        if widths is None:
            first.append(cells)
            if len(first) < TABLE_PAGE:
                continue
            widths = _widths([header, *first])
            _write_aligned([header, *first], widths, out, redact)
            continue
        _write_aligned([cells], widths, out, redact)
    if widths is None:
        _write_aligned([header, *first], _widths([header, *first]), out, redact)
    return count


def _cells(row: HistoryRow) -> tuple[str, ...]:
    return tuple(
        printable(c)
        for c in (
            format_time(row.time),
            row.device,
            row.direction,
            row.resource,
            row.version or "-",
            row.status or "-",
            row.source,
            cloud_state(row) or "-",
            detail(row),
        )
    )


def _widths(rows: list[tuple[str, ...]]) -> list[int]:
    return [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]


def _write_aligned(
    rows: list[tuple[str, ...]], widths: list[int], out: TextIO, redact: Redact
) -> None:
    for r in rows:
        line = "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        out.write(redact(line) + "\n")


def detail(row: HistoryRow) -> str:
    """A short human reading of the row's value."""
    parts: list[str] = []
    if row.resource == OTAU_IN:
        try:
            message = StatusReport.from_json(row.value).message
        except ValueError:
            message = ""
        if message:
            parts.append(message)
    elif row.resource == CONFIG_OTAU and row.direction == "in":
        parsed = parse_manifest(row.value)
        if isinstance(parsed, Manifest):
            parts.append(f'manifest "{parsed.name}" ({parsed.type.value})')
    if row.note:
        parts.append(row.note)
    text = " ".join(" - ".join(parts).split())
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…"
