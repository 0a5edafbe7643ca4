"""History entries and offered manifests from the store's rows (what `FleetState.load_history`
takes at start-up), and the one-line readings the history shows."""

from __future__ import annotations

from otatui.otau.manifest import Manifest, parse_manifest
from otatui.otau.status import StatusReport
from otatui.store import HistoryRow
from otatui.tui.records import NOT_SENT, SENT, HistoryEntry, OfferedManifest

OTAU_IN = "otau_in"


def entry_from_row(row: HistoryRow, outbox_id: int | None = None) -> HistoryEntry:
    """The history entry of a stored row; a report's message read from its value; what goes to
    the cloud is ``sent`` or ``not yet sent`` (then `outbox_id` names its outbox item)."""
    cloud = ""
    if row.direction == "out":
        cloud = SENT if row.delivered_at is not None else NOT_SENT
    return HistoryEntry(
        time=row.time,
        device=row.device,
        direction=row.direction,
        resource=row.resource,
        version=row.version,
        status=row.status,
        message=report_message(row.value) if row.resource == OTAU_IN else "",
        source=row.source,
        cloud=cloud,
        note=row.note or "",
        row_id=row.id,
        outbox_id=outbox_id if cloud == NOT_SENT else None,
    )


def offered_from_row(row: HistoryRow) -> OfferedManifest:
    """The manifest of a stored ``config_otau`` value (valid or not)."""
    parsed = parse_manifest(row.value)
    if isinstance(parsed, Manifest):
        return OfferedManifest(
            version=parsed.version,
            name=parsed.name,
            type=parsed.type.value,
            description=parsed.description,
            items=tuple(i.raw for i in parsed.items),
            source=row.source,
            time=row.time,
        )
    return OfferedManifest(
        version=parsed.version or row.version,
        valid=False,
        reason=parsed.reason,
        source=row.source,
        time=row.time,
    )


def manifest_line(offered: OfferedManifest) -> str:
    """``manifest "<name>" (<type>)`` or why it is not valid."""
    if not offered.valid:
        return f"invalid manifest: {offered.reason}"
    return f'manifest "{offered.name}" ({offered.type})'


def report_message(value: str) -> str:
    """The message of an ``otau_in`` value ("" when it is not a valid report)."""
    try:
        return StatusReport.from_json(value).message
    except ValueError:
        return ""
