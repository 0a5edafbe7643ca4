"""The Manifests, Transfers and History screens and the export dialog: Pilot tests and snapshots."""

from __future__ import annotations

import os
from pathlib import Path

from textual.app import App, ComposeResult
from textual.widgets import Input, Static

from otatui.tui.widgets.export_dialog import (
    ExportChoice,
    ExportDialog,
    ExportFormat,
    check_path,
    with_suffix,
)

# -- the export dialog ----------------------------------------------------------------------------


def test_check_path(tmp_path: Path) -> None:
    assert check_path("  ", tmp_path).problem.startswith("enter")
    ok = check_path("out.csv", tmp_path)
    assert (ok.path, ok.problem, ok.exists) == (tmp_path / "out.csv", "", False)
    assert check_path(str(tmp_path), tmp_path).problem.endswith("is a folder: add a file name")
    assert "is a folder" in check_path("sub/", tmp_path).problem
    missing = check_path("nowhere/out.csv", tmp_path)
    assert missing.path is None and "does not exist" in missing.problem
    (tmp_path / "old.csv").write_text("x")
    assert check_path("old.csv", tmp_path).exists
    assert check_path("~/x.csv", tmp_path).path == Path(os.path.expanduser("~/x.csv"))
    assert check_path("a/../b.csv", tmp_path).path == tmp_path / "b.csv"


def test_with_suffix() -> None:
    assert with_suffix("h.csv", ExportFormat.JSON_LINES) == "h.jsonl"
    assert with_suffix("h.JSON", ExportFormat.CSV) == "h.csv"
    assert with_suffix("h.txt", ExportFormat.JSON_LINES) == "h.txt"
    assert with_suffix("history", ExportFormat.CSV) == "history"


class DialogHost(App[None]):
    """Opens the dialog and keeps what it returned."""

    def __init__(self, base: Path) -> None:
        super().__init__()
        self.base = base
        self.results: list[ExportChoice | None] = []

    def compose(self) -> ComposeResult:
        yield Static("host")

    def on_mount(self) -> None:
        self.push_screen(ExportDialog("history.csv", base=self.base), self.results.append)


async def test_dialog_returns_choice_and_format(tmp_path: Path) -> None:
    app = DialogHost(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("tab", "right", "enter")  # focus the formats, choose JSON lines
        await pilot.pause()
        assert app.screen.query_one("#export-path", Input).value == "history.jsonl"
        await pilot.press("ctrl+s")
        await pilot.pause()
    assert app.results == [ExportChoice(tmp_path / "history.jsonl", ExportFormat.JSON_LINES)]


async def test_dialog_refuses_bad_paths_and_confirms_replace(tmp_path: Path) -> None:
    (tmp_path / "history.csv").write_text("old")
    app = DialogHost(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        dialog = app.screen
        path_input = dialog.query_one("#export-path", Input)
        problem = dialog.query_one("#export-problem", Static)
        path_input.value = "missing/h.csv"
        await pilot.press("enter")
        assert "does not exist" in str(problem.render())
        assert app.results == []
        path_input.value = "history.csv"
        await pilot.press("enter")
        await pilot.pause()
        assert "press Enter again to replace it" in str(problem.render())
        assert app.results == []
        await pilot.press("enter")
        await pilot.pause()
    assert app.results == [ExportChoice(tmp_path / "history.csv", ExportFormat.CSV)]
    assert (tmp_path / "history.csv").read_text() == "old"  # the dialog writes nothing


async def test_dialog_cancel(tmp_path: Path) -> None:
    app = DialogHost(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
    assert app.results == [None]
