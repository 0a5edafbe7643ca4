"""A virtual table on Textual's Line API: it draws only the rows on screen, straight from a model.

`RowTable(columns, cells, revision)` holds nothing but the order of the rows (their names, with an
index from name to position) and a cursor; each visible line asks `cells(name)` for its `Text`
cells when `revision(name)` says the row changed since it was last drawn, so a thousand rows cost
what the thirty on screen cost. Column widths are fixed (`Column.width`, widened only by
`widen`, never by measuring cells); the last column takes the spare width; values longer than
their column end with an ellipsis. A header line stays on top; the rows scroll under it with the
keyboard (arrows, page up/down, home/end) and the mouse (wheel, click; a click on the cursor row
selects it).

Reordering (`set_rows`) is O(rows) for the index and keeps the cursor on the same row name;
`refresh_rows(names)` repaints only those of the names that are on screen.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

PAD = 1
"""Blank cells before each column's value (the gap between columns)."""
ELLIPSIS = "…"
_CONTROL = {c: " " for c in (*range(32), 127)}


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    width: int
    """Cells for the value (without the gap); `widen` may grow it up to `max_width`."""
    max_width: int = 0
    """The widest `widen` may make it (0: `width`)."""


def fit(text: Text, width: int) -> tuple[Text, int]:
    """`text` on one line (control characters as blanks), cut to `width` cells with an
    ellipsis; and its width in cells. `text` itself is never changed."""
    if not text.plain.isprintable():
        text = Text(text.plain.translate(_CONTROL), style=text.style, spans=list(text.spans))
    length = text.cell_len
    if length > width:
        text = text.copy()
        text.truncate(width, overflow="ellipsis")
        length = text.cell_len
    return text, length


class RowTable(ScrollView, can_focus=True):
    """Rows named by strings, drawn on demand from `cells(name)`; see the module docstring."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "row-table--header",
        "row-table--cursor",
        "row-table--even-row",
        "row-table--odd-row",
    }
    DEFAULT_CSS = """
    RowTable {
        background: $surface;
        color: $foreground;
        &:focus {
            background-tint: $foreground 5%;
            & > .row-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .row-table--header {
                background-tint: $foreground 5%;
            }
        }
        &:dark > .row-table--even-row {
            background: $surface-darken-1 40%;
        }
        & > .row-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .row-table--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
        & > .row-table--odd-row {
        }
        & > .row-table--even-row {
            background: $surface-lighten-1 50%;
        }
        & > .row-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
        Binding("left", "scroll_left", "Left", show=False),
        Binding("right", "scroll_right", "Right", show=False),
    ]

    class Selected(Message):
        """A row was chosen with the mouse (a click on the cursor row)."""

        def __init__(self, table: RowTable, name: str) -> None:
            super().__init__()
            self.table = table
            self.name = name

        @property
        def control(self) -> RowTable:
            return self.table

    class Highlighted(Message):
        """The cursor moved to another row (or its row changed under it)."""

        def __init__(self, table: RowTable, name: str | None) -> None:
            super().__init__()
            self.table = table
            self.name = name

        @property
        def control(self) -> RowTable:
            return self.table

    def __init__(
        self,
        columns: Sequence[Column],
        cells: Callable[[str], Sequence[Text]],
        revision: Callable[[str], Hashable],
        *,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.columns = tuple(columns)
        self._cells = cells
        self._revision = revision
        self._widths = [c.width for c in self.columns]
        self._marks = [Style.from_meta({"column": i}) for i in range(len(self.columns))]
        self._gaps = [Style.from_meta({"gap": i}) for i in range(len(self.columns))]
        self._rows: list[str] = []
        self._index: dict[str, int] = {}
        self.cursor_row = 0
        self._drawn: dict[str, tuple[Hashable, int, Strip]] = {}
        self._styles: _Styles | None = None
        self._header: Strip | None = None
        self._drawn_widths: list[int] = []

    # -- the rows ----------------------------------------------------------------------------

    @property
    def rows(self) -> tuple[str, ...]:
        return tuple(self._rows)

    @property
    def row_count(self) -> int:
        return len(self._rows)

    def get_row_index(self, name: str) -> int:
        """The position of a row (KeyError when it is not shown)."""
        return self._index[name]

    def __contains__(self, name: object) -> bool:
        return name in self._index

    @property
    def cursor_name(self) -> str | None:
        if not self._rows:
            return None
        return self._rows[min(self.cursor_row, len(self._rows) - 1)]

    def row_texts(self, name: str) -> tuple[Text, ...]:
        """The cells of a row, as drawn (before fitting to the widths)."""
        return tuple(self._cells(name))

    def get_cell(self, name: str, key: str) -> Text:
        """The cell of a row in a column, as drawn (before fitting to the width)."""
        i = next(i for i, c in enumerate(self.columns) if c.key == key)
        return self._cells(name)[i]

    def set_rows(self, names: Sequence[str]) -> None:
        """Show these rows in this order; the cursor stays on its row if it is still shown."""
        selected = self.cursor_name
        self._rows = list(names)
        self._index = {n: i for i, n in enumerate(self._rows)}
        if len(self._drawn) > 4 * max(64, len(self._rows)):
            self._drawn.clear()
        if selected is not None and selected in self._index:
            self.cursor_row = self._index[selected]
        self.cursor_row = max(0, min(self.cursor_row, len(self._rows) - 1))
        self._update_virtual_size()
        self._scroll_cursor_into_view()
        self.refresh()
        self._highlighted(selected)

    def append_rows(self, names: Sequence[str], *, follow: bool = False) -> None:
        """Add rows at the end (O(new rows)); `follow`: the cursor goes to the last row."""
        if not names:
            return
        selected = self.cursor_name
        start = len(self._rows)
        self._rows.extend(names)
        for i, name in enumerate(names, start):
            self._index[name] = i
        self._update_virtual_size()
        if follow:
            self.cursor_row = len(self._rows) - 1
            self._scroll_cursor_into_view()
            self.refresh()
        else:
            self.refresh_lines(start + 1, len(names))
        self._highlighted(selected)

    def _highlighted(self, before: str | None) -> None:
        if self.cursor_name != before:
            self.post_message(self.Highlighted(self, self.cursor_name))

    def refresh_rows(self, names: Iterable[str]) -> None:
        """Repaint the rows of these names that are on screen (the others draw when shown)."""
        top = round(self.scroll_offset.y)
        bottom = top + self._body_height()
        for name in names:
            i = self._index.get(name)
            if i is not None and top <= i < bottom:
                self.refresh_line(i + 1)

    def widen(self, key: str, width: int) -> bool:
        """Grow a column to hold `width` cells (up to its `max_width`); True if it grew."""
        for i, c in enumerate(self.columns):
            if c.key == key:
                wanted = min(width, max(c.max_width, c.width))
                if wanted <= self._widths[i]:
                    return False
                self._widths[i] = wanted
                self._relayout()
                return True
        raise KeyError(key)

    def column_width(self, key: str) -> int:
        """The cells a column's values get now (without the gap)."""
        return self._layout()[[c.key for c in self.columns].index(key)]

    # -- cursor --------------------------------------------------------------------------------

    def move_cursor(self, row: int) -> None:
        if not self._rows:
            return
        row = max(0, min(row, len(self._rows) - 1))
        if row == self.cursor_row:
            return
        old = self.cursor_row
        self.cursor_row = row
        self.refresh_line(old + 1)
        self.refresh_line(row + 1)
        self._scroll_cursor_into_view()
        self.post_message(self.Highlighted(self, self.cursor_name))

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor_row + 1)

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor_row - max(1, self._body_height() - 1))

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor_row + max(1, self._body_height() - 1))

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(len(self._rows) - 1)

    def _body_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_cursor_into_view(self) -> None:
        top = round(self.scroll_offset.y)
        height = self._body_height()
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + height:
            self.scroll_to(y=self.cursor_row - height + 1, animate=False, immediate=True)

    async def _on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return
        row = round(self.scroll_offset.y) + offset.y - 1
        if not 0 <= row < len(self._rows):
            return
        event.stop()
        if row == self.cursor_row:
            self.post_message(self.Selected(self, self._rows[row]))
        else:
            self.move_cursor(row)

    # -- layout --------------------------------------------------------------------------------

    def _layout(self) -> list[int]:
        """Column widths for the current width: fixed ones, the last taking the spare."""
        widths = list(self._widths)
        total = sum(widths) + PAD * len(widths)
        spare = self.scrollable_content_region.width - total
        if spare > 0 and widths:
            widths[-1] += spare
        return widths

    def _relayout(self) -> None:
        self._drawn_widths = []
        self._drawn.clear()
        self._header = None
        self._update_virtual_size()
        self.refresh()

    def _update_virtual_size(self) -> None:
        """A new row count or width; the screen is laid out again only when a scroll bar
        appears or goes (setting `virtual_size` would re-lay out and repaint the whole screen
        on every filter key)."""
        width = sum(self._widths) + PAD * len(self._widths)
        size = Size(width, len(self._rows) + 1)
        if size == self.virtual_size:
            return
        self.set_reactive(RowTable.virtual_size, size)
        self._scroll_update(size)  # scroll bars (shown or not: a layout), scroll offsets

    def on_resize(self, event: events.Resize) -> None:
        self._relayout()
        self._scroll_cursor_into_view()

    # -- drawing -------------------------------------------------------------------------------

    def _line(self, cells: Iterable[Text], widths: Sequence[int]) -> Strip:
        """One line: per column a gap, then the value and its padding. Gaps and values are
        marked apart (style meta), so each value is its own run that starts with the value: a
        picture (SVG) then keeps every column where it is, however a viewer sizes blanks."""
        console = self.app.console
        segments: list[Segment] = []
        for cell, width, mark, gap in zip(cells, widths, self._marks, self._gaps, strict=True):
            text, length = fit(cell, width)
            segments.append(Segment(" " * PAD, gap))
            rendered = text.render(console)  # the spans' styles, not the text's own
            if text.style:
                rendered = Segment.apply_style(rendered, console.get_style(text.style))
            part = list(rendered)
            if length < width:
                part.append(Segment(" " * (width - length)))
            segments.extend(Segment.apply_style(part, post_style=mark))
        return Strip(segments, sum(widths) + PAD * len(widths))

    def _pass_styles(self) -> _Styles:
        """The styles of this drawing pass (base, header, cursor, even, odd rows); a change
        (focus, theme) forgets the drawn lines."""
        base = self.rich_style
        get = self.get_component_rich_style
        cursor = get("row-table--cursor")
        styles = _Styles(
            header=base + get("row-table--header"),
            cursor=base + cursor,
            cursor_colours=Style.from_color(cursor.color, cursor.bgcolor),
            even=base + get("row-table--even-row"),
            odd=base + get("row-table--odd-row"),
            blank=base,
        )
        if styles != self._styles:
            self._styles = styles
            self._drawn.clear()
            self._header = None
        return styles

    def render_lines(self, crop: Region) -> list[Strip]:
        self._pass_styles()
        widths = self._layout()
        if widths != self._drawn_widths:
            self._drawn_widths = widths
            self._drawn.clear()
            self._header = None
        return super().render_lines(crop)

    def _row_strip(self, name: str, row: int, styles: _Styles) -> tuple[Strip, Style]:
        """The row's line, styled (cursor, even or odd), from the cache when its revision and
        place are those it was drawn with."""
        kind = 2 if row == self.cursor_row else row % 2
        style = styles.cursor if kind == 2 else styles.odd if kind else styles.even
        revision = self._revision(name)
        drawn = self._drawn.get(name)
        if drawn is not None and drawn[0] == revision and drawn[1] == kind:
            return drawn[2], style
        strip = self._line(self._cells(name), self._drawn_widths or self._layout())
        post = styles.cursor_colours if kind == 2 else None
        strip = Strip(Segment.apply_style(strip, style, post), strip.cell_length)
        self._drawn[name] = (revision, kind, strip)
        return strip, style

    def render_line(self, y: int) -> Strip:
        styles = self._styles or self._pass_styles()
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        if y == 0:
            if self._header is None:
                widths = self._drawn_widths or self._layout()
                line = self._line((Text(c.label) for c in self.columns), widths)
                self._header = Strip(Segment.apply_style(line, styles.header), line.cell_length)
            strip, style = self._header, styles.header
        else:
            row = round(scroll_y) + y - 1
            if not 0 <= row < len(self._rows):
                return Strip.blank(width, styles.blank)
            strip, style = self._row_strip(self._rows[row], row, styles)
        if scroll_x == 0 and strip.cell_length == width:
            return strip
        return strip.crop_extend(scroll_x, scroll_x + width, style)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()


@dataclass(frozen=True, slots=True)
class _Styles:
    header: Style
    cursor: Style
    cursor_colours: Style
    """Over the cells' own colours on the cursor row."""
    even: Style
    odd: Style
    blank: Style
