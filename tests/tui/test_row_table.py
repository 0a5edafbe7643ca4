"""The virtual table (`RowTable`): draws only the rows on screen, keeps the cursor on its row,
scrolls with keys and mouse, fits values to fixed widths."""

from __future__ import annotations

from collections.abc import Hashable

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult

from otatui.tui.widgets.row_table import Column, RowTable, fit

COLUMNS = (Column("name", "Name", 8, 12), Column("value", "Value", 6))


class TableApp(App[None]):
    def __init__(self, rows: int) -> None:
        super().__init__()
        self.values = {f"row-{i:04d}": Text(str(i)) for i in range(rows)}
        self.revisions = dict.fromkeys(self.values, 0)
        self.drawn: list[str] = []
        self.selected: list[str] = []

    def cells(self, name: str) -> tuple[Text, ...]:
        self.drawn.append(name)
        return (Text(name), self.values[name])

    def revision(self, name: str) -> Hashable:
        return self.revisions[name]

    def compose(self) -> ComposeResult:
        yield RowTable(COLUMNS, self.cells, self.revision, id="t")

    def on_mount(self) -> None:
        self.table.set_rows(list(self.values))
        self.table.focus()

    @property
    def table(self) -> RowTable:
        return self.query_one("#t", RowTable)

    def on_row_table_selected(self, event: RowTable.Selected) -> None:
        self.selected.append(event.name)


def lines(app: TableApp) -> list[str]:
    t = app.table
    return [t.render_line(y).text for y in range(t.size.height)]


async def test_only_the_rows_on_screen_are_drawn() -> None:
    app = TableApp(10_000)
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        assert app.table.row_count == 10_000
        assert 0 < len(set(app.drawn)) <= 12
        assert lines(app)[0].split() == ["Name", "Value"]
        assert lines(app)[1].split() == ["row-0000", "0"]
        app.drawn.clear()
        await pilot.press("end")
        await pilot.pause()
        assert app.table.cursor_name == "row-9999"
        assert lines(app)[-1].split() == ["row-9999", "9999"]
        assert len(set(app.drawn)) <= 12


async def test_a_row_redraws_only_when_its_revision_changes() -> None:
    app = TableApp(50)
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        app.values["row-0002"] = Text("changed")
        app.table.refresh_rows(["row-0002"])
        await pilot.pause()
        assert "changed" not in lines(app)[3]  # same revision: the cached line
        app.revisions["row-0002"] = 1
        app.table.refresh_rows(["row-0002"])
        await pilot.pause()
        assert lines(app)[3].split() == ["row-0002", "changed"]


async def test_the_cursor_stays_on_its_row_when_the_order_changes() -> None:
    app = TableApp(100)
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        await pilot.press("down", "down", "down")
        assert app.table.cursor_name == "row-0003"
        app.table.set_rows(list(reversed(app.values)))
        await pilot.pause()
        assert app.table.cursor_name == "row-0003"
        assert app.table.cursor_row == 96
        shown = [line.split()[0] for line in lines(app)[1:]]
        assert "row-0003" in shown  # scrolled to the cursor
        app.table.set_rows(["row-0050", "row-0051"])  # the cursor's row left: same place
        await pilot.pause()
        assert app.table.cursor_name == "row-0051"
        app.table.set_rows([])
        await pilot.pause()
        assert app.table.cursor_name is None and app.table.row_count == 0


async def test_page_keys_move_by_a_screen() -> None:
    app = TableApp(100)
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        await pilot.press("pagedown")
        await pilot.pause()
        assert app.table.cursor_row == app.table.size.height - 2
        await pilot.press("pageup", "pageup")
        assert app.table.cursor_row == 0
        await pilot.press("up")
        assert app.table.cursor_row == 0


async def test_a_click_moves_the_cursor_and_a_second_click_selects() -> None:
    app = TableApp(20)
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        await pilot.click("#t", offset=(3, 4))  # header is line 0: row 3
        await pilot.pause()
        assert app.table.cursor_name == "row-0003" and app.selected == []
        await pilot.click("#t", offset=(3, 4))
        await pilot.pause()
        assert app.selected == ["row-0003"]
        await pilot.click("#t", offset=(3, 0))  # the header selects nothing
        await pilot.pause()
        assert app.selected == ["row-0003"]


async def test_the_mouse_wheel_scrolls_without_moving_the_cursor() -> None:
    app = TableApp(100)
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        for _ in range(3):
            app.table.post_message(
                events.MouseScrollDown(app.table, 2, 2, 0, 1, 0, False, False, False)
            )
        await pilot.pause()
        assert app.table.scroll_offset.y > 0
        assert app.table.cursor_row == 0
        assert lines(app)[1].split()[0] != "row-0000"
        assert lines(app)[0].split() == ["Name", "Value"]  # the header stays
        await pilot.press("down")  # the cursor comes back into view
        await pilot.pause()
        assert app.table.cursor_name == "row-0001"
        assert lines(app)[1].split()[0] == "row-0001"


async def test_a_wide_table_scrolls_sideways_with_its_header() -> None:
    app = TableApp(5)
    async with app.run_test(size=(12, 8)) as pilot:
        await pilot.pause()
        assert lines(app)[1].startswith(" row-0000")
        await pilot.press("right", "right")
        await pilot.pause()
        assert app.table.scroll_offset.x == 2
        assert lines(app)[0].startswith("ame")
        assert lines(app)[1].startswith("ow-0000")


async def test_widen_grows_up_to_the_maximum_and_the_last_column_fills() -> None:
    app = TableApp(3)
    async with app.run_test(size=(40, 6)) as pilot:
        await pilot.pause()
        t = app.table
        assert t.column_width("name") == 8
        assert t.column_width("value") == 40 - (1 + 8) - 1  # gaps, name: the rest
        assert t.widen("name", 10) and t.column_width("name") == 10
        assert not t.widen("name", 9)  # never shrinks
        assert t.widen("name", 99) and t.column_width("name") == 12


def test_fit_cuts_with_an_ellipsis_and_blanks_control_characters() -> None:
    original = Text("abcdefghij", style="red")
    text, length = fit(original, 5)
    assert (text.plain, length, text.style) == ("abcd…", 5, "red")
    assert original.plain == "abcdefghij"
    text, length = fit(Text("a\nb\tc\x1b"), 10)
    assert (text.plain, length) == ("a b c ", 6)
    assert fit(Text("[bold]x[/]"), 20)[0].plain == "[bold]x[/]"
    wide, length = fit(Text("機器機器機器"), 7)
    assert length <= 7 and wide.plain.endswith("…")


async def test_the_scroll_bar_follows_the_row_count() -> None:
    app = TableApp(100)
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        assert app.table.show_vertical_scrollbar
        await pilot.press("end")
        await pilot.pause()
        assert app.table.scroll_offset.y > 0
        app.table.set_rows(["row-0001", "row-0002"])
        await pilot.pause()
        assert not app.table.show_vertical_scrollbar
        assert app.table.scroll_offset.y == 0
        assert [line.split()[:1] for line in lines(app)[1:4]] == [["row-0001"], ["row-0002"], []]
        app.table.set_rows(list(app.values))
        await pilot.pause()
        assert app.table.show_vertical_scrollbar
        await pilot.press("end")
        await pilot.pause()
        assert lines(app)[-1].split() == ["row-0099", "99"]
