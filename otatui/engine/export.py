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

from otatui.engine.overview import CONFIG_OTAU, OTAU_IN, align, format_time
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
    """An aligned table; what each row says (message, manifest name, note) on the right."""
    cells: list[tuple[str, ...]] = [(*_TABLE_HEADERS, "DETAIL")]
    for row in rows:
        cells.append(
            (
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
    for line in align(cells):
        out.write(redact(line) + "\n")
    return len(cells) - 1


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
