"""QA: the header's fleet summary reads in words at 80 columns and never cuts the site."""

from __future__ import annotations

from otatui.tui.frozen import FrozenBackend
from otatui.tui.state import FleetState
from otatui.tui.widgets.chrome import header_line, summary_text


def sample_state() -> FleetState:
    b = FrozenBackend()
    s = FleetState(b.devices, clock=b.now)
    stored = b.stored_history()
    s.load_history(stored.rows, stored.outbox)
    s.apply_all(b.events.drain())
    return s


def test_the_summary_reads_in_words_at_80_columns() -> None:
    s = sample_state()
    for title in ("Fleet", "Device meter-3", "Manifests"):
        line = header_line("acme-plant", title, s, 80)
        assert len(line) == 80
        assert line.startswith(" ")
        assert "acme-plant" in line
        assert line.rstrip().endswith(
            "4 need attention · 4 updating · 3 ok · 1 offline · 10/12 connected"
        )
    wide = header_line("acme-plant", "Device meter-3", s, 120)
    assert "otatui acme-plant · Device meter-3" in wide
    assert "3 up to date" in wide


def test_zero_counts_are_left_out_and_a_long_site_is_whole() -> None:
    s = FleetState([], clock=lambda: 0.0)
    assert summary_text(s) == "0/0 connected"
    site = "north-plant-building-7-second-floor-east"
    line = header_line(site, "Device meter-3", sample_state(), 80)
    assert site in line and "10/12 connected" in line
    assert "!!" in line  # markers only when words do not fit
