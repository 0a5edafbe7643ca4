"""QA: what a device says about itself (category, the "Now" line, the transfer lines)."""

from __future__ import annotations

import time

from otatui.engine.events import (
    ConnectionChanged,
    LinkChanged,
    ManifestReceived,
    PhaseChanged,
    ReportObserved,
    ReportQueued,
    TransferProgress,
)
from otatui.tui import cells
from otatui.tui.keys import shown_key
from otatui.tui.records import Category, DeviceInfo, DeviceView
from otatui.tui.sections import connection_text, timeline_text, transfer_text
from otatui.tui.state import FleetState

NOW = 1000.0


def fleet(role: str = "agent", link: str | None = None) -> FleetState:
    info = DeviceInfo(name="gw", identity="gw", role=role, protocol="mqtt", link=link)
    return FleetState([info], clock=lambda: NOW)


def connected(s: FleetState) -> None:
    s.apply(ConnectionChanged(device="gw", time=1.0, protocol="mqtt", state="connected"))


def offered(s: FleetState) -> None:
    s.apply(
        ManifestReceived(
            device="gw", time=2.0, version="2.1.0", name="fw", type="FILE", items=("fw.bin",)
        )
    )


def dev(s: FleetState) -> DeviceView:
    return s.devices["gw"]


def test_a_cancelled_update_needs_attention_and_says_how_to_retry() -> None:
    s = fleet()
    connected(s)
    offered(s)
    s.apply(PhaseChanged(device="gw", time=3.0, phase="downloading", version="2.1.0"))
    s.apply(
        ReportQueued(device="gw", time=4.0, outbox_id=1, version="2.1.0", status="INSTALL_ABORTED")
    )
    s.apply(PhaseChanged(device="gw", time=4.0, phase="idle"))
    d = dev(s)
    assert d.category is Category.ATTENTION
    assert d.why(NOW) == "2.1.0 was cancelled (INSTALL_ABORTED): r retries it"
    assert d.why(NOW, retry_key="ctrl+r").endswith("ctrl+r retries it")
    # a new manifest clears it
    s.apply(ManifestReceived(device="gw", time=5.0, version="2.2.0", name="fw", items=("fw2.bin",)))
    assert dev(s).category is not Category.ATTENTION


def test_a_stopped_transfer_says_how_far_it_got() -> None:
    s = fleet()
    connected(s)
    offered(s)
    s.apply(PhaseChanged(device="gw", time=3.0, phase="downloading", version="2.1.0"))
    s.apply(
        TransferProgress(
            device="gw",
            time=3.5,
            file="fw.bin",
            index=0,
            count=1,
            done=300_000,
            total=1_000_000,
            rate=1000.0,
        )
    )
    s.apply(PhaseChanged(device="gw", time=4.0, phase="idle"))
    text = transfer_text(dev(s)).plain
    assert f"stopped at {cells.size(300_000)} of {cells.size(1_000_000)}" in text


def test_shown_keys_follow_the_remap() -> None:
    assert shown_key("device.retry") == "r"
    assert shown_key("device.retry", {"device.retry": "ctrl+r,x"}) == "ctrl+r"
    assert shown_key("app.help") == "?"


def test_a_device_not_connected_is_never_up_to_date() -> None:
    for state in ("unknown", "connecting", "backoff"):
        s = fleet()
        if state != "unknown":
            s.apply(ConnectionChanged(device="gw", time=1.0, protocol="mqtt", state=state))
        assert dev(s).category is Category.OFFLINE, state
    s = fleet()
    s.apply(ConnectionChanged(device="gw", time=1.0, protocol="mqtt", state="auth_failed"))
    assert dev(s).category is Category.ATTENTION
    s = fleet()
    connected(s)
    assert dev(s).category is Category.UP_TO_DATE


def test_a_refused_token_says_it_once() -> None:
    s = fleet()
    reason = "connect: the connector refused the device token (HTTP 401)"
    s.apply(
        ConnectionChanged(
            device="gw", time=1.0, protocol="http", state="auth_failed", reason=reason
        )
    )
    d = dev(s)
    assert d.why(NOW) == f"{reason}; no retry"
    now_text = connection_text(d, NOW).plain
    assert now_text.count("refused") == 1
    assert cells.connection_cell(d, NOW).plain == "refused"
    assert d.category is Category.ATTENTION


def test_a_bridge_says_what_its_link_does() -> None:
    s = fleet(role="bridge", link="serial:/dev/ttyUSB0")
    connected(s)
    offered(s)
    s.apply(PhaseChanged(device="gw", time=3.0, phase="installing", version="2.1.0"))
    s.apply(
        LinkChanged(
            device="gw",
            time=3.1,
            link="serial",
            state="transferring",
            detail="sending 1 file(s) with YMODEM",
        )
    )
    s.apply(
        TransferProgress(
            device="gw",
            time=3.2,
            file="fw.bin",
            index=0,
            count=1,
            done=43,
            total=100,
            rate=10.0,
            direction="push",
        )
    )
    d = dev(s)
    assert d.why(NOW) == "pushing 2.1.0 to the device over serial: 43% (YMODEM)"
    s.apply(LinkChanged(device="gw", time=4.0, link="serial", state="installing", detail="x"))
    assert dev(s).why(NOW) == "the device installs 2.1.0"


def test_a_resumed_download_says_so() -> None:
    s = fleet()
    connected(s)
    offered(s)
    s.apply(PhaseChanged(device="gw", time=3.0, phase="downloading", version="2.1.0"))
    s.apply(
        TransferProgress(
            device="gw",
            time=3.5,
            file="fw.bin",
            index=0,
            count=1,
            done=700_000,
            total=1_000_000,
            rate=1000.0,
            resumed=2,
            resumed_at=600_000,
        )
    )
    t = dev(s).transfers[("download", "fw.bin")]
    assert (t.resumed, t.resumed_at) == (2, 600_000)
    assert f"resumed ×2 (at {cells.size(600_000)})" in transfer_text(dev(s)).plain


def test_a_monitor_sees_reports_it_did_not_send() -> None:
    s = fleet(role="monitor")
    connected(s)
    s.apply(
        ReportObserved(
            device="gw",
            time=5.0,
            version="5",
            status="INSTALLED_VERSION",
            source="http",
            sampled=True,
        )
    )
    e = s.history[-1]
    assert e.cloud == "seen" and e.sent is None and e.note.startswith("sampled")
    line = timeline_text(dev(s), time.gmtime).plain
    assert "· seen" in line and "sent" not in line
    assert dev(s).last_status_sent is None


def test_an_invalid_manifest_row_keeps_its_reason_whole() -> None:
    s = fleet()
    connected(s)
    reason = 'payload "file:///etc/passwd" is not an http(s) URL'
    s.apply(
        ManifestReceived(
            device="gw", time=2.0, version="0.4.0", valid=False, reason=reason, source="http"
        )
    )
    line = timeline_text(dev(s), time.gmtime).plain.splitlines()[-1]
    assert "rejected" in line
    assert line.endswith(f"http · invalid manifest: {reason}")
