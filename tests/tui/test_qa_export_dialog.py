"""QA: Enter exports from any field of the export dialog, the format field included."""

from __future__ import annotations

from pathlib import Path

from otatui.tui.app import OtaApp
from otatui.tui.frozen import FrozenBackend
from otatui.tui.widgets.export_dialog import ExportChoice, ExportDialog, ExportFormat

SIZE = (80, 24)


async def test_enter_on_a_new_format_picks_it_then_exports(tmp_path: Path) -> None:
    app = OtaApp(FrozenBackend(), frozen=True)
    got: list[ExportChoice | None] = []
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.push_screen(ExportDialog("h.csv", base=tmp_path), got.append)
        await pilot.pause()
        assert "ctrl+s" in str(app.screen.query_one("#export-hint").render())
        await pilot.press("tab")  # the format choice
        await pilot.pause()
        await pilot.press("right", "enter")  # JSON lines: the first Enter picks it
        await pilot.pause()
        assert got == []
        await pilot.press("enter")  # the next exports
        await pilot.pause()
    assert got == [ExportChoice(tmp_path / "h.jsonl", ExportFormat.JSON_LINES)]


async def test_enter_on_the_format_keeps_the_chosen_one(tmp_path: Path) -> None:
    app = OtaApp(FrozenBackend(), frozen=True)
    got: list[ExportChoice | None] = []
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.push_screen(ExportDialog("h.csv", base=tmp_path), got.append)
        await pilot.pause()
        await pilot.press("tab", "enter")
        await pilot.pause()
    assert got == [ExportChoice(tmp_path / "h.csv", ExportFormat.CSV)]
