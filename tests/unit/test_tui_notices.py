"""Which events pop up a notice, and how a flood of them is cut short."""

from __future__ import annotations

from otatui.engine.events import (
    AwaitingApply,
    InstallOutput,
    ReportObserved,
    ReportQueued,
)
from otatui.tui.notices import MAX_NOTICES, notice_of, notices


def failed(device: str, status: str = "INSTALL_ERROR") -> ReportQueued:
    return ReportQueued(
        device=device, outbox_id=1, version="2.0", status=status, message="flash failed"
    )


def test_awaiting_apply_and_failures_pop_up_the_rest_does_not() -> None:
    n = notice_of(AwaitingApply(device="s1", version="3.0"))
    assert n is not None and n.severity == "warning" and "s1: 3.0 is ready" in n.message
    n = notice_of(failed("p8"))
    assert n is not None and n.severity == "error"
    assert n.message == "p8: INSTALL_ERROR 2.0: flash failed"
    seen = notice_of(ReportObserved(device="t4", version="5", status="DOWNLOAD_ERROR"))
    assert seen is not None and seen.message == "t4: DOWNLOAD_ERROR 5"
    assert notice_of(failed("p8", "INSTALL_ABORTED")) is None  # the technician did it
    assert notice_of(failed("p8", "DOWNLOAD_STEP")) is None
    assert notice_of(InstallOutput(device="x", line="hi")) is None


def test_a_flood_is_cut_to_a_few_and_a_count() -> None:
    out = notices([failed(f"d{i}") for i in range(50)])
    assert len(out) == MAX_NOTICES + 1
    assert out[-1].message == f"and {50 - MAX_NOTICES} more (see the fleet and history)"
    assert len(notices([failed("a"), failed("b")])) == 2
