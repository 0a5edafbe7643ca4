"""Timestamped batch writes over HTTP: `POST /onep:v1/stack/record`.

Body: ``alias=a&<ts1>=<v1>&<ts2>=<v2>&alias=b&<ts3>=<v3>``, timestamps in whole Unix seconds.
The connector refuses a request (409 Conflict, body ``<alias>=<ts>&...``) when two timestamps
of one alias are less than 1 s apart. Status reports of one update often fall within the same
second (``INIT``, ``TEST``, ``TEST_SUCCESS`` ...), so a backlog is split before sending:

`split_for_record(records)` cuts the backlog, in order, into consecutive groups such that within
each group the whole-second timestamps of one alias are all different (hence at least 1 s apart).
Each group is one request; send them one after the other and delete each group from the outbox
once its request was confirmed. Values keep their original second: two reports of one alias in the
same second go out in two requests carrying the same timestamp (how Murano stores a second value at
an existing timestamp is not documented).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from otatui.murano.channel import TimedValue
from otatui.murano.form import decode_form, encode_form


def record_second(timestamp: float) -> int:
    """The whole Unix second a record carries (floor, so it never lies in the future)."""
    return math.floor(timestamp)


def split_for_record(records: Sequence[TimedValue]) -> list[list[TimedValue]]:
    """Consecutive groups of `records`, order kept, each acceptable as one record request."""
    groups: list[list[TimedValue]] = []
    current: list[TimedValue] = []
    seen: set[tuple[str, int]] = set()
    for rec in records:
        key = (rec.alias, record_second(rec.timestamp))
        if key in seen:
            groups.append(current)
            current, seen = [], set()
        current.append(rec)
        seen.add(key)
    if current:
        groups.append(current)
    return groups


def encode_record(records: Sequence[TimedValue]) -> str:
    """The form body of one record request; aliases in order of first appearance.

    Raises ValueError if two records of one alias share a second (use `split_for_record`).
    """
    by_alias: dict[str, list[TimedValue]] = {}
    for rec in records:
        by_alias.setdefault(rec.alias, []).append(rec)
    pairs: list[tuple[str, str]] = []
    for alias, recs in by_alias.items():
        seconds = [record_second(r.timestamp) for r in recs]
        if len(set(seconds)) != len(seconds):
            raise ValueError(f"two values of {alias} share one second; split the batch first")
        pairs.append(("alias", alias))
        pairs.extend((str(s), r.value) for s, r in zip(seconds, recs, strict=True))
    return encode_form(pairs)


def parse_conflicts(body: str) -> dict[str, list[float]]:
    """The ``<alias>=<ts>&...`` body of a 409 answer (``<ts>,<ts>`` lists too); unreadable parts
    are skipped."""
    conflicts: dict[str, list[float]] = {}
    try:
        pairs = decode_form(body)
    except ValueError:
        return conflicts
    for alias, text in pairs:
        stamps = conflicts.setdefault(alias, [])
        for part in text.split(","):
            try:
                stamps.append(float(part))
            except ValueError:
                continue
    return conflicts
