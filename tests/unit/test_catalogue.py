"""Row models of the Manifests, Transfers and History screens (otatui.tui.catalogue and
otatui.tui.history_filter)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from otatui.murano.content import ContentInfo
from otatui.otau.payload import PayloadItem, PayloadSource
from otatui.transfer import CachedFile
from otatui.tui.backend import ContentEntry
from otatui.tui.catalogue import (
    CacheState,
    TransferRow,
    TransferState,
    combined,
    content_rows,
    content_sizes,
    manifest_group,
    manifest_groups,
    transfer_rows,
)
from otatui.tui.history_filter import HistoryFilter
from otatui.tui.records import (
    NOT_SENT,
    SENT,
    FileTransfer,
    HistoryEntry,
    ManifestView,
    OfferedManifest,
)

PIN = "ab" * 32


def view(
    version: str,
    items: tuple[str, ...] = ("fw.bin",),
    *,
    offered: set[str] | None = None,
    seen: set[str] | None = None,
    installed: set[str] | None = None,
    failed: set[str] | None = None,
    last: float = 100.0,
    valid: bool = True,
) -> ManifestView:
    offered = offered or set()
    return ManifestView(
        version=version,
        manifest=OfferedManifest(
            version=version,
            name=f"fw {version}",
            type="URL_LIST" if len(items) > 1 else "FILE",
            description="firmware",
            items=items,
            valid=valid,
            reason="" if valid else '"type" is not one of FILE, JSON, URL_LIST',
        ),
        first_seen=last - 50,
        last_seen=last,
        offered_to=offered,
        installed_on=installed or set(),
        failed_on=failed or set(),
        seen_by=(seen or set()) | offered,
    )


# -- manifests ------------------------------------------------------------------------------------


def test_items_source_pin_and_no_query_shown() -> None:
    g = manifest_group(
        view(
            "2.1.0",
            (
                f"fw-2.1.0.bin#sha256={PIN}",
                "https://cdn.example.com/a/boot.img?sig=SECRET123",
            ),
        )
    )
    content, external = g.items
    assert (content.source, content.where, content.filename) == (
        PayloadSource.CONTENT,
        "fw-2.1.0.bin",
        "fw-2.1.0.bin",
    )
    assert content.pinned and content.pin_text == "sha256:" + PIN[:12]
    assert (external.source, external.where, external.filename) == (
        PayloadSource.EXTERNAL,
        "cdn.example.com",
        "boot.img",
    )
    assert not external.pinned and external.pin_text == "UNPINNED"
    assert g.unpinned == 1
    assert "SECRET123" not in repr(g)


def test_invalid_item_is_shown_with_its_reason() -> None:
    g = manifest_group(view("3.0", ("ftp://host/x.bin",), valid=True))
    (entry,) = g.items
    assert entry.source is None and entry.source_text == "invalid"
    assert "scheme" in entry.problem
    assert g.unpinned == 0


def test_cache_state_and_sizes() -> None:
    asked: list[str] = []

    def lookup(device: str, item: PayloadItem) -> CachedFile | None:
        asked.append(device)
        if item.filename == "a.bin" and device == "pump-2":
            return CachedFile(Path("/cache") / PIN, PIN, 1200)
        return None

    g = manifest_group(
        view("1", ("a.bin", "b.bin"), offered={"pump-2"}, seen={"old-1"}),
        lookup,
        sizes={"b.bin": 800},
    )
    a, b = g.items
    assert (a.cache, a.size) == (CacheState.CACHED, 1200)
    assert (b.cache, b.size) == (CacheState.MISSING, 800)  # size from the content list
    assert asked == ["pump-2", "pump-2", "old-1"]  # offered devices first
    assert g.cache is CacheState.MISSING
    assert g.size == 2000
    assert manifest_group(view("1", ("a.bin",), offered={"pump-2"}), lookup).cache is (
        CacheState.CACHED
    )
    assert manifest_group(view("1", ("x",))).cache is CacheState.UNKNOWN  # no lookup
    assert manifest_group(view("1", ("x",)), lookup).cache is CacheState.UNKNOWN  # no device
    assert manifest_group(view("1", ("x",))).size is None


def test_combined_cache_states() -> None:
    assert combined([]) is CacheState.UNKNOWN
    assert combined([CacheState.CACHED, CacheState.CACHED]) is CacheState.CACHED
    assert combined([CacheState.CACHED, CacheState.UNKNOWN]) is CacheState.UNKNOWN
    assert combined([CacheState.UNKNOWN, CacheState.MISSING]) is CacheState.MISSING
    assert CacheState.CACHED.marker != CacheState.MISSING.marker


def test_device_lists() -> None:
    g = manifest_group(
        view(
            "2.0",
            offered={"pump-2", "pump-1"},
            seen={"pump-3", "pump-4"},
            installed={"pump-3"},
            failed={"pump-4", "pump-3"},
        )
    )
    assert g.offered_to == ("pump-1", "pump-2")
    assert g.previously_offered == ("pump-3", "pump-4")
    assert g.installed_on == ("pump-3",)
    assert g.failed_on == ("pump-4",)  # installed after all: not failed
    assert g.current


def test_groups_current_first_then_newest() -> None:
    groups = manifest_groups(
        [
            view("1.0", last=10),
            view("3.0", last=30),
            view("2.0", offered={"a"}, last=20),
            view("2.5", offered={"b"}, last=25),
        ]
    )
    assert [g.version for g in groups] == ["2.5", "2.0", "3.0", "1.0"]
    assert [g.current for g in groups] == [True, True, False, False]


def test_invalid_manifest_keeps_reason() -> None:
    g = manifest_group(view("9", (), valid=False))
    assert not g.valid and "type" in g.reason and g.items == ()


# -- connector content ----------------------------------------------------------------------------


def test_content_rows_mark_packages_and_users() -> None:
    groups = manifest_groups(
        [view("2.0", (f"package_fw#sha256={PIN}", "https://h.example/x.bin")), view("1.0")]
    )
    entries = [
        ContentEntry("package_fw", ContentInfo("application/x", 4096, 50.0, "bundle")),
        ContentEntry("fw.bin"),
        ContentEntry("notes.txt", None, "info of content notes.txt: HTTP 500"),
    ]
    rows = content_rows(entries, groups)
    assert [r.content_id for r in rows] == ["package_fw", "fw.bin", "notes.txt"]
    assert [r.package for r in rows] == [True, False, False]
    assert rows[0].marker == "PKG" and rows[1].marker == "-"
    assert rows[0].used_by == ("2.0",)
    assert rows[1].used_by == ("1.0",)
    assert rows[2].used_by == ()
    assert (rows[0].size, rows[0].content_type, rows[0].description) == (
        4096,
        "application/x",
        "bundle",
    )
    assert rows[1].size is None and rows[2].error.endswith("HTTP 500")
    assert content_sizes(rows) == {"package_fw": 4096}


# -- transfers ------------------------------------------------------------------------------------


def test_transfer_row_active_eta_and_text() -> None:
    t = FileTransfer("pump-1", "fw.bin", "download", 1, 3, done=250_000, total=1_000_000)
    t.rate = 50_000.0
    row = TransferRow.of(t)
    assert row.state is TransferState.ACTIVE
    assert row.fraction == pytest.approx(0.25)
    assert row.eta == pytest.approx(15.0)
    assert row.file_text == "fw.bin (2/3)"


def test_transfer_row_finished_states() -> None:
    ok = FileTransfer("d", "a.bin", "push", done=10, total=None, finished=True, ok=True, size=4000)
    row = TransferRow.of(ok)
    assert (row.state, row.done, row.total, row.fraction, row.eta) == (
        TransferState.OK,
        4000,
        4000,
        1.0,
        None,
    )
    failed = FileTransfer("d", "b.bin", "download", done=5, total=10, finished=True, ok=False)
    failed.message = "sha256 mismatch"
    assert TransferRow.of(failed).state is TransferState.FAILED
    assert TransferRow.of(failed).message == "sha256 mismatch"
    stopped = FileTransfer("d", "c.bin", "download", finished=True, ok=None)
    assert TransferRow.of(stopped).state is TransferState.STOPPED
    cached = FileTransfer("d", "e.bin", "download", finished=True, ok=True, from_cache=True)
    assert TransferRow.of(cached).message == "from the cache"
    unknown = FileTransfer("d", "f.bin", "download", done=10)
    assert TransferRow.of(unknown).fraction is None and TransferRow.of(unknown).eta is None
    assert len({s.marker for s in TransferState}) == len(TransferState)


def test_transfer_rows_order_and_limit() -> None:
    rows = transfer_rows(
        [
            FileTransfer("b", "x", "download", updated=5),
            FileTransfer("z", "old", "download", finished=True, ok=True, updated=1),
            FileTransfer("a", "x", "push", updated=9),
            FileTransfer("z", "new", "download", finished=True, ok=False, updated=3),
            FileTransfer("z", "mid", "download", finished=True, ok=True, updated=2),
        ],
        finished_limit=2,
    )
    assert [(r.device, r.file) for r in rows] == [
        ("a", "x"),
        ("b", "x"),
        ("z", "new"),
        ("z", "mid"),
    ]


# -- history filter -------------------------------------------------------------------------------


BASE = HistoryEntry(
    time=1.0,
    device="pump-1",
    direction="out",
    resource="otau_in",
    version="2.1.0",
    status="DOWNLOAD",
    source="mqtt",
    cloud=SENT,
)


def entry(**changes: object) -> HistoryEntry:
    return replace(BASE, **changes)


def test_empty_filter_matches_everything() -> None:
    f = HistoryFilter.parse("   ")
    assert f.empty and f.describe() == "everything"
    assert f.matches(entry())


def test_words_match_anywhere_all_required_case_insensitive() -> None:
    f = HistoryFilter.parse("PUMP install")
    assert f.text == ("pump", "install")
    assert f.matches(entry(status="INSTALL_ERROR"))
    assert f.matches(entry(message="install step 3"))
    assert not f.matches(entry(status="DOWNLOAD"))
    assert HistoryFilter.parse("2.1").matches(entry())
    assert HistoryFilter.parse("serial").matches(entry(source="serial"))
    assert HistoryFilter.parse("yet").matches(entry(cloud=NOT_SENT))


def test_tokens_narrow() -> None:
    f = HistoryFilter.parse("device:pump-2 source:SERIAL dir:out is:error is:unsent")
    assert f == HistoryFilter(
        device="pump-2", source="serial", direction="out", errors_only=True, unsent_only=True
    )
    good = entry(device="pump-2", source="serial", status="INSTALL_ERROR", cloud=NOT_SENT)
    assert f.matches(good)
    assert not f.matches(entry(device="pump-2", source="serial", status="INSTALL_ERROR"))
    assert not f.matches(
        entry(device="pump-1", source="serial", status="INSTALL_ERROR", cloud=NOT_SENT)
    )
    assert not f.matches(
        entry(device="pump-2", source="lan", status="INSTALL_ERROR", cloud=NOT_SENT)
    )
    assert not f.matches(entry(device="pump-2", source="serial", status="INSTALL", cloud=NOT_SENT))
    assert "errors only" in f.describe() and "not yet sent" in f.describe()


def test_error_filter_includes_local_errors_and_direction() -> None:
    f = HistoryFilter.parse("is:error")
    assert f.matches(entry(direction="local", resource="error", status=None, message="boom"))
    assert not f.matches(entry(status="INSTALLED_VERSION"))
    assert HistoryFilter.parse("dir:in").matches(entry(direction="in", resource="config_otau"))
    assert not HistoryFilter.parse("dir:in").matches(entry())


def test_unknown_token_is_a_word() -> None:
    f = HistoryFilter.parse("is:weird colour:red device:")
    assert f.text == ("is:weird", "colour:red", "device:")
    assert not f.matches(entry())
