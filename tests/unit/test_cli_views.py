"""What `otatui status`, `history`, `sync` and `fetch` print, from plain data (no network)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from otatui.engine import export
from otatui.engine.overview import DeviceStatus, align, printable, status_cells, status_table
from otatui.engine.prefetch import DeviceFetch, FileFetch, FileState, device_lines
from otatui.engine.redaction import Redactor
from otatui.engine.sync import DeviceSync, SentReport, SyncResult, summary_lines
from otatui.store import HistoryRow, Store


def test_redactor_hides_every_secret_longest_first() -> None:
    redact = Redactor(["abc", "abcdef", ""])
    assert redact("x abcdef y abc") == "x *** y ***"
    assert "abc" not in repr(redact)


def test_printable_escapes_terminal_control_characters() -> None:
    assert printable("plain ü") == "plain ü"
    assert printable("a\x1b[2Jb\tc") == "a\\x1b[2Jb\\tc"
    assert align([("a", "bb"), ("ccc", "d")]) == ["a    bb", "ccc  d"]


BASE = DeviceStatus(
    name="gw", role="bridge", protocol="http", link="lan", installed_version="1.0",
    phase="downloading", offered_version="2.0", offered_name="Fw", last_status="DOWNLOAD",
    last_status_version="2.0", last_status_message="file 1 of 2\nnext", last_status_sent=False,
    pending=3, last_contact=None,
)  # fmt: skip


def _status(**kw: Any) -> DeviceStatus:
    return replace(BASE, **kw)


def test_status_line_shows_work_in_progress_and_unsent_status() -> None:
    cells = status_cells(_status())
    assert cells[:5] == ("gw", "bridge", "http+lan", "1.0 (downloading)", '2.0 "Fw"')
    assert cells[5] == "DOWNLOAD 2.0: file 1 of 2 next (not yet sent)"
    assert cells[6:] == ("3", "-")
    idle = status_cells(_status(phase="idle", last_status_sent=True, last_status=None))
    assert idle[3] == "1.0" and idle[5] == "-"
    assert len(status_table([_status(), _status(name="x")])) == 3


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "otatui.db") as s:
        yield s


def _rows(store: Store) -> list[HistoryRow]:
    return list(export.history_rows(store))


def test_csv_and_json_keep_raw_values_and_parse_back(store: Store) -> None:
    tricky = 'a,"b"\nc'
    store.add_history(device="gw", direction="in", resource="config_otau", value=tricky,
                      source="mqtt", time=10.5)  # fmt: skip
    store.enqueue(device="gw", resource="otau_in", value='{"x":1}', source="serial",
                  produced_at=11.0, note="n")  # fmt: skip
    store.add_history(device="gw", direction="out", resource="otau_in", value="v", source="http",
                      time=12.0, delivered_at=13.0)  # fmt: skip
    store.add_history(device="gw", direction="local", resource="otau_in", value="bad \x1b",
                      source="local", time=14.0)  # fmt: skip
    out = io.StringIO()
    assert export.write_csv(_rows(store), out, Redactor()) == 4
    records = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["value"] for r in records[:3]] == [tricky, '{"x":1}', "v"]
    assert [r["cloud"] for r in records] == ["", "not yet sent", "sent", ""]
    assert [r["source"] for r in records] == ["mqtt", "serial", "http", "local"]
    assert records[1]["delivered_at"] == "" and records[2]["delivered_at"] == "13.0"
    out = io.StringIO()
    export.write_json_lines(_rows(store), out, Redactor())
    data = [json.loads(line) for line in out.getvalue().splitlines()]
    assert data[0]["value"] == tricky and data[0]["time"] == 10.5
    assert data[3]["value"] == "bad \x1b"
    assert list(data[0]) == list(export.FIELDS)
    # A lone surrogate (a non-UTF-8 byte kept by surrogateescape) is written as an escape.
    odd = HistoryRow(
        1, 1.0, "gw", "in", "config_otau", "bad \udcff", None, None, "mqtt", None, None
    )
    line = export.json_line(odd)
    line.encode("utf-8")
    assert json.loads(line)["value"] == "bad \udcff"


def test_table_streams_with_the_widths_of_the_first_page(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "TABLE_PAGE", 3)
    for i in range(7):
        store.add_history(device="d" * (1 + i), direction="in", resource="config_otau",
                          value="not json", source="http", time=float(i), note=f"n{i}")  # fmt: skip
    out = io.StringIO()
    assert export.write_table(_rows(store), out, Redactor()) == 7
    lines = out.getvalue().splitlines()
    assert len(lines) == 8 and lines[0].startswith("TIME")
    # The first page is aligned; a later, longer device name pushes only its own line.
    assert lines[1].index("in ") == lines[3].index("in ")
    assert lines[7].index("in ") > lines[1].index("in ")
    empty = io.StringIO()
    assert export.write_table(iter(()), empty, Redactor()) == 0
    assert empty.getvalue().startswith("TIME")


def test_sync_summary_names_what_was_sent_and_why_the_rest_was_not() -> None:
    ok = DeviceSync("a", pending=2, sent=[SentReport(0, "1", "INIT"), SentReport(1, "1", "TEST")])
    failed = DeviceSync("b", pending=4, remaining=4, error="connector unreachable")
    result = SyncResult([ok, failed], unknown_pending=2)
    lines = summary_lines(result, lambda t: f"t{t:g}")
    assert lines == [
        "a: sent 2 of 2 reports (INIT 1 at t0 ... TEST 1 at t1)",
        "b: sent 0 of 4 reports; 4 kept in the outbox: connector unreachable",
        "2 reports of devices not in the configuration stay in the outbox",
    ]
    assert not result.ok and SyncResult([ok]).ok
    assert summary_lines(SyncResult([]), str) == ["nothing to send: the outbox is empty"]


def test_fetch_lines() -> None:
    result = DeviceFetch("gw", "2.0", "Fw", "URL_LIST", files=[
        FileFetch("a.bin", "content", False, FileState.DOWNLOADED, 12, "ab" * 32),
        FileFetch("b.bin", "external", True, FileState.FAILED, error="HTTP 404"),
    ])  # fmt: skip
    lines = device_lines(result)
    assert lines[0] == 'gw: manifest 2.0 "Fw" (URL_LIST), 2 files'
    assert lines[1].split() == ["a.bin", "12", "B", "abababababab", "unpinned", "downloaded"]
    assert lines[2].split() == ["b.bin", "-", "-", "pinned", "failed:", "HTTP", "404"]
    assert not result.ok
    assert device_lines(DeviceFetch("x", offered=False)) == [
        "x: no manifest offered, nothing to fetch"
    ]
    assert device_lines(DeviceFetch("x", error="cannot read")) == ["x: cannot read"]
