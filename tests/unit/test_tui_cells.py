"""Cell texts of the TUI (readable without colour) and the binding table."""

from __future__ import annotations

import pytest

from otatui.tui import cells
from otatui.tui.keys import BY_ID, KEYS, binding, key_label, unknown_ids
from otatui.tui.records import Category


def test_bar_shows_fraction_and_percent_and_is_blank_without_progress() -> None:
    assert cells.bar(None) == ""
    assert cells.bar(0.0) == "░" * 10 + "   0%"
    assert cells.bar(0.5) == "█" * 5 + "░" * 5 + "  50%"
    assert cells.bar(2.0) == "█" * 10 + " 100%"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (-3, "0s ago"),
        (59, "59s ago"),
        (60, "1m ago"),
        (7200, "2h ago"),
        (3 * 86400, "3d ago"),
    ],
)
def test_ago(seconds: float | None, text: str) -> None:
    now = 1_000_000.0
    assert cells.ago(None if seconds is None else now - seconds, now) == text


def test_sizes_rates_and_durations() -> None:
    assert cells.size(None) == "?"
    assert cells.size(512) == "512 B"
    assert cells.size(1536) == "1.5 KiB"
    assert cells.size(5_592_405) == "5.3 MiB"
    assert cells.rate(0) == "-"
    assert cells.rate(262_144) == "256.0 KiB/s"
    assert cells.duration(None) == "-"
    assert cells.duration(9.4) == "9s"
    assert cells.duration(185) == "3m05s"
    assert cells.duration(3720) == "1h02m"


def test_every_state_has_a_distinct_marker_and_colour() -> None:
    assert len({c.marker for c in Category}) == len(Category)
    assert len({cells.STATE_STYLES[c] for c in Category}) == len(Category)
    assert cells.state_cell(Category.ATTENTION).plain == "!! needs attention"
    assert cells.state_cell(Category.ATTENTION, short=True).plain == "!! attention"


def test_monochrome_keeps_attributes_and_makes_red_bold() -> None:
    assert cells.tone("bold red", mono=False) == "bold red"
    assert cells.tone("bold red", mono=True) == "bold"
    assert cells.tone("red", mono=True) == "bold"
    assert cells.tone("yellow", mono=True) == ""
    assert cells.tone("italic cyan", mono=True) == "italic"
    assert cells.state_cell(Category.OFFLINE, mono=True).style == ""


def test_binding_ids_are_unique_scoped_and_remappable() -> None:
    assert len(BY_ID) == len(KEYS)
    assert all("." in k.id for k in KEYS)
    b = binding("fleet.filter")
    assert (b.id, b.key, b.action) == ("fleet.filter", "slash", "filter")
    assert unknown_ids({"fleet.filter": "ctrl+f", "fleet.flter": "x"}) == ["fleet.flter"]
    assert key_label("question_mark,f1") == "?, f1"


def test_the_readme_table_lists_every_binding() -> None:
    from otatui.tui.keys import all_keys, bindings_markdown

    table = bindings_markdown().splitlines()
    assert table[0].startswith("| Key |")
    assert len(table) == 2 + len(all_keys())
    assert (
        "| `/` | fleet | filter by text"
        in table[2 + [k.id for k in all_keys()].index("fleet.filter")]
    )
