"""FleetState: engine events and store rows in, device views, history, transfers, manifests out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from otatui.engine.events import (
    ConnectionChanged,
    Event,
    InstallOutput,
    ManifestReceived,
    PhaseChanged,
    ReportObserved,
    ReportQueued,
    ReportsDelivered,
    SessionError,
    TransferFinished,
    TransferProgress,
)
from otatui.store import HistoryRow
from otatui.tui.frozen import FROZEN_NOW, FrozenBackend
from otatui.tui.records import NOT_SENT, OUTPUT_LINES, SENT, Category, DeviceInfo
from otatui.tui.state import FleetState

T = 1_700_000_000.0


def fleet() -> FleetState:
    return FleetState(
        [
            DeviceInfo("a", "id-a", "agent", "mqtt", None, "1.0.0"),
            DeviceInfo("b", "id-b", "bridge", "http", "serial:/dev/ttyUSB0?baud=115200", "1.0.0"),
            DeviceInfo("m", "id-m", "monitor", "http"),
        ],
        clock=lambda: T,
    )


def offer(device: str, version: str, at: float = T, **kw: object) -> ManifestReceived:
    fields: dict[str, object] = {
        "name": "fw",
        "type": "URL_LIST",
        "items": ("fw.bin", "https://example.com/x.bin#sha256=" + "a" * 64),
        "source": "mqtt",
    }
    fields.update(kw)
    return ManifestReceived(device=device, time=at, version=version, **fields)  # type: ignore[arg-type]


def report(device: str, oid: int, version: str, status: str, at: float = T, msg: str = "") -> Event:
    return ReportQueued(
        device=device,
        time=at,
        outbox_id=oid,
        version=version,
        status=status,
        message=msg,
        source="mqtt",
    )


def test_a_new_state_knows_every_configured_device_and_nothing_else() -> None:
    s = fleet()
    assert list(s.devices) == ["a", "b", "m"]
    assert s.devices["a"].installed_version == "1.0.0"
    assert s.devices["a"].connection == "unknown"
    assert not s.apply(ConnectionChanged(device="zz", protocol="mqtt", state="connected"))
    assert not s.apply(object())
    assert s.version == 0


def test_connection_backoff_answers_why_it_has_not_started() -> None:
    s = fleet()
    assert s.apply(
        ConnectionChanged(
            device="a",
            time=T,
            protocol="mqtt",
            state="backoff",
            reason="refused",
            retry_at=T + 42,
            attempt=3,
        )
    )
    d = s.devices["a"]
    assert (d.connection, d.connection_reason, d.retry_at, d.attempt) == (
        "backoff",
        "refused",
        T + 42,
        3,
    )
    assert d.category is Category.OFFLINE
    assert d.why(T + 2) == "cannot reach the connector: refused; retry in 40 s (attempt 3)"
    s.apply(ConnectionChanged(device="a", time=T + 50, protocol="mqtt", state="connected"))
    assert d.last_seen == T + 50
    assert d.category is Category.UP_TO_DATE
    assert d.why(T) == "connected; no manifest offered"


def test_a_stopped_channel_needs_attention() -> None:
    s = fleet()
    s.apply(ConnectionChanged(device="a", protocol="mqtt", state="stopped", reason="no token"))
    assert s.devices["a"].category is Category.ATTENTION
    assert s.devices["a"].why(T) == "stopped: no token"


def test_auth_failure_needs_attention() -> None:
    s = fleet()
    s.apply(ConnectionChanged(device="a", protocol="mqtt", state="auth_failed", reason="HTTP 401"))
    assert s.devices["a"].category is Category.ATTENTION
    assert "refused the credentials" in s.devices["a"].why(T)


def test_a_full_update_flow_moves_categories_versions_and_manifest_index() -> None:
    s = fleet()
    s.apply(ConnectionChanged(device="a", protocol="mqtt", state="connected"))
    s.apply(offer("a", "2.0.0"))
    d = s.devices["a"]
    assert d.offered is not None and d.offered.version == "2.0.0"
    assert s.manifests["2.0.0"].offered_to == {"a"}
    s.apply(report("a", 1, "2.0.0", "INIT"))
    s.apply(
        PhaseChanged(device="a", phase="downloading", version="2.0.0", installed_version="1.0.0")
    )
    assert d.category is Category.UPDATING
    s.apply(
        TransferProgress(device="a", file="fw.bin", index=0, count=2, done=50, total=100, rate=10.0)
    )
    assert d.progress == pytest.approx(0.25)
    [t] = d.active_transfers
    assert t.eta == pytest.approx(5.0)
    s.apply(TransferFinished(device="a", file="fw.bin", ok=True, size=100, sha256="ab"))
    assert not d.active_transfers and t.outcome == "done" and t.fraction == 1.0
    assert s.transfers[0] is t
    s.apply(
        PhaseChanged(device="a", phase="installing", version="2.0.0", installed_version="1.0.0")
    )
    s.apply(InstallOutput(device="a", line="flashing"))
    s.apply(report("a", 2, "2.0.0", "INSTALLED_VERSION"))
    s.apply(PhaseChanged(device="a", phase="idle", installed_version="2.0.0"))
    assert d.installed_version == "2.0.0"
    assert d.category is Category.UP_TO_DATE
    assert s.manifests["2.0.0"].installed_on == {"a"}
    assert [o.line for o in d.output] == ["flashing"]
    assert d.last_status == "INSTALLED_VERSION" and d.last_status_sent is False


def test_delivery_marks_the_history_entries_sent() -> None:
    s = fleet()
    s.apply(report("a", 7, "2.0.0", "INIT"))
    s.apply(report("a", 8, "2.0.0", "TEST"))
    entries = [e for e in s.history if e.resource == "otau_in"]
    assert [e.cloud for e in entries] == [NOT_SENT, NOT_SENT]
    s.apply(ReportsDelivered(device="a", outbox_ids=(7,)))
    assert [e.cloud for e in entries] == [SENT, NOT_SENT]
    assert s.devices["a"].last_status_sent is False  # the newest (TEST) still waits
    s.apply(ReportsDelivered(device="a", outbox_ids=(8, 999)))
    assert entries[1].sent is True
    assert s.devices["a"].last_status_sent is True


def test_a_failed_install_needs_attention_until_a_new_manifest_comes() -> None:
    s = fleet()
    s.apply(ConnectionChanged(device="a", protocol="mqtt", state="connected"))
    s.apply(offer("a", "2.0.0"))
    s.apply(report("a", 1, "2.0.0", "INSTALL_ERROR", msg="exit 3"))
    d = s.devices["a"]
    assert d.failed and d.category is Category.ATTENTION
    assert s.manifests["2.0.0"].failed_on == {"a"}
    assert "INSTALL_ERROR for 2.0.0: exit 3" in d.why(T)
    s.apply(offer("a", "2.0.1"))
    assert not d.failed and d.category is Category.UP_TO_DATE
    assert s.manifests["2.0.0"].offered_to == set()
    assert s.manifests["2.0.1"].offered_to == {"a"}


def test_an_aborted_install_needs_attention_but_is_not_a_failure() -> None:
    s = fleet()
    s.apply(ConnectionChanged(device="a", protocol="mqtt", state="connected"))
    s.apply(offer("a", "2.0.0"))
    s.apply(report("a", 1, "2.0.0", "INSTALL_ABORTED"))
    d = s.devices["a"]
    assert d.category is Category.ATTENTION  # the offered update did not happen
    assert not d.failed and d.cancelled


def test_an_invalid_manifest_needs_attention() -> None:
    s = fleet()
    s.apply(ConnectionChanged(device="a", protocol="mqtt", state="connected"))
    s.apply(ManifestReceived(device="a", version="9", valid=False, reason="bad payload"))
    d = s.devices["a"]
    assert d.category is Category.ATTENTION
    assert "not valid: bad payload" in d.why(T)
    assert s.history[-1].note == "rejected: bad payload"


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkChanged(Event):
    """Stands for the engine's event when this module is older than the engine (or newer)."""

    kind: ClassVar[str] = "link"
    link: str
    state: str
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AwaitingApply(Event):
    kind: ClassVar[str] = "awaiting_apply"
    version: str


def test_link_state_and_awaiting_apply_by_kind() -> None:
    s = fleet()
    s.apply(ConnectionChanged(device="b", protocol="http", state="connected"))
    s.apply(offer("b", "3.0.0"))
    s.apply(LinkChanged(device="b", link="serial", state="waiting", detail="no answer yet"))
    d = s.devices["b"]
    assert (d.link_state, d.link_detail) == ("waiting", "no answer yet")
    assert d.why(T) == "link waiting: no answer yet"
    s.apply(AwaitingApply(device="b", version="3.0.0"))
    assert d.awaiting_apply == "3.0.0"
    assert d.category is Category.ATTENTION
    assert d.why(T).startswith("3.0.0 is ready")
    s.apply(report("b", 1, "3.0.0", "INSTALL"))
    assert d.awaiting_apply is None
    s.apply(AwaitingApply(device="b", version="3.0.1"))
    s.apply(PhaseChanged(device="b", phase="installing", version="3.0.1"))
    assert d.awaiting_apply is None  # the engine: the wait ends with the next phase change


def test_push_progress_is_a_transfer_of_its_own() -> None:
    s = fleet()
    s.apply(
        TransferProgress(
            device="b",
            file="fw.bin",
            index=0,
            count=1,
            done=10,
            total=40,
            rate=2.0,
            direction="push",
        )
    )
    [t] = s.active_transfers
    assert (t.direction, t.fraction) == ("push", 0.25)
    s.apply(PhaseChanged(device="b", phase="idle"))
    assert t.finished and t.outcome == "stopped"
    assert s.transfers == [t]


def test_a_cancelled_download_stops_its_transfer() -> None:
    s = fleet()
    s.apply(PhaseChanged(device="a", phase="downloading", version="2"))
    s.apply(TransferProgress(device="a", file="f", index=0, count=1, done=1, total=9, rate=1.0))
    s.apply(PhaseChanged(device="a", phase="idle"))
    assert s.active_transfers == []
    assert s.finished[-1].outcome == "stopped"


def test_monitor_sees_reports_only() -> None:
    s = fleet()
    s.apply(ConnectionChanged(device="m", protocol="http", state="connected"))
    s.apply(ReportObserved(device="m", version="5", status="DOWNLOAD", source="http"))
    d = s.devices["m"]
    assert d.category is Category.UPDATING
    s.apply(ReportObserved(device="m", version="5", status="INSTALLED_VERSION", source="http"))
    assert d.installed_version == "5" and d.category is Category.UP_TO_DATE
    # a monitor sends nothing: its rows were seen in the cloud, not sent by otatui
    assert s.history[-1].cloud == "seen" and s.history[-1].note.startswith("sampled")


def test_errors_and_failed_files() -> None:
    s = fleet()
    s.apply(SessionError(device="a", message="disk full"))
    assert s.devices["a"].error == "disk full"
    assert s.history[-1].direction == "local" and s.history[-1].resource == "error"
    assert not s.devices["a"].timeline  # the timeline holds otau_in/config_otau only
    s.apply(TransferFinished(device="a", file="x.bin", ok=False, message="HTTP 404"))
    assert s.devices["a"].error == "x.bin: HTTP 404"
    assert s.finished[-1].outcome == "failed"


def test_output_and_history_are_bounded() -> None:
    s = FleetState([DeviceInfo("a", "i", "agent", "mqtt")], history_limit=10, finished_limit=3)
    for i in range(OUTPUT_LINES + 5):
        s.apply(InstallOutput(device="a", line=f"l{i}"))
    assert len(s.devices["a"].output) == OUTPUT_LINES
    assert s.devices["a"].output[-1].line == f"l{OUTPUT_LINES + 4}"
    for i in range(20):
        s.apply(report("a", i, "1", "INIT", at=T + i))
    assert len(s.history) == 10 and s.history[-1].time == T + 19
    for i in range(5):
        s.apply(TransferFinished(device="a", file=f"f{i}", ok=True))
    assert [t.file for t in s.finished] == ["f2", "f3", "f4"]


def test_version_and_revisions_tell_what_changed() -> None:
    s = fleet()
    v0 = s.version
    s.apply(InstallOutput(device="a", line="x"))
    assert s.version == v0 + 1
    assert [d.name for d in s.changed_since(v0)] == ["a"]
    v1 = s.version
    s.apply_all([InstallOutput(device="b", line="y"), InstallOutput(device="m", line="z")])
    assert sorted(d.name for d in s.changed_since(v1)) == ["b", "m"]
    assert s.changed_since(s.version) == []


def _row(
    i: int,
    device: str,
    direction: str,
    resource: str,
    value: str,
    *,
    version: str | None = None,
    status: str | None = None,
    delivered: float | None = None,
) -> HistoryRow:
    return HistoryRow(
        i,
        T + i,
        device,
        direction,
        resource,
        value,
        version,
        status,
        "mqtt",
        None,  # type: ignore[arg-type]
        delivered,
    )


def test_load_history_seeds_offers_statuses_and_the_outbox() -> None:
    s = fleet()
    manifest = '{"version":"2.0.0","name":"fw","type":"FILE","payload":"fw.bin"}'
    rows = [
        _row(1, "a", "in", "config_otau", manifest, version="2.0.0"),
        _row(
            2,
            "a",
            "out",
            "otau_in",
            '{"version":"2.0.0","status":"INIT","message":""}',
            version="2.0.0",
            status="INIT",
            delivered=T + 3,
        ),
        _row(
            3,
            "a",
            "out",
            "otau_in",
            '{"version":"2.0.0","status":"INSTALL_ERROR","message":"boom"}',
            version="2.0.0",
            status="INSTALL_ERROR",
        ),
        _row(4, "ghost", "out", "otau_in", "{}", version="1", status="INIT"),
    ]
    assert s.load_history(rows, outbox={77: 3}) == 3
    d = s.devices["a"]
    assert d.offered is not None and d.offered.name == "fw" and d.offered.items == ("fw.bin",)
    assert (d.last_status, d.last_message, d.last_status_sent) == ("INSTALL_ERROR", "boom", False)
    assert d.last_seen == T + 3
    assert d.category is Category.ATTENTION
    assert [e.cloud for e in d.timeline] == ["", SENT, NOT_SENT]
    s.apply(ReportsDelivered(device="a", outbox_ids=(77,)))
    assert d.timeline[-1].cloud == SENT and d.last_status_sent is True


def test_frozen_sample_covers_every_category() -> None:
    b = FrozenBackend()
    s = FleetState(b.devices, clock=b.now)
    stored = b.stored_history()
    s.load_history(stored.rows, stored.outbox)
    s.apply_all(b.events.drain())
    counts = s.counts()
    assert all(counts[c] > 0 for c in Category), counts
    d = s.devices["meter-3"]
    assert d.why(FROZEN_NOW) == (
        "cannot reach the connector: connection refused by 10.0.4.2:8883; retry in 42 s (attempt 5)"
    )
    assert s.devices["sensor-1"].awaiting_apply == "3.0.2"
    assert s.devices["pump-7"].active_transfers[0].eta is not None
    assert {"2.1.0", "3.0.2"} <= set(s.manifests)
    assert s.manifests["2.1.0"].failed_on == {"pump-8"}
    assert s.manifests["2.1.0"].installed_on == {"hvac-1"}


def test_device_sections_read_a_manifest_without_files_and_unpinned_items() -> None:
    from otatui.tui.sections import manifest_text

    s = fleet()
    s.apply(offer("a", "2.0.0", type="JSON", items=()))
    text = manifest_text(s.devices["a"], lambda device, item: None).plain
    assert "no files to download" in text
    s.apply(offer("a", "2.0.1"))
    text = manifest_text(s.devices["a"], lambda device, item: None).plain
    assert "fw.bin  connector content  ?  not cached  unpinned (no sha256 pin)" in text
    assert "x.bin  external example.com  ?  not cached  sha256 aaaaaaaaaaaa…" in text
