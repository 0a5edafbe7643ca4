"""The export dialog: which file to write the history into, and in which format.

It only asks and checks (the folder exists, the path is not a folder, replacing an existing file
needs a second confirmation); it returns an `ExportChoice` (or ``None`` when cancelled). Writing
the file is the backend's job (`otatui.engine.export`), never this widget's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Static


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON_LINES = "jsonl"

    @property
    def label(self) -> str:
        return "CSV" if self is ExportFormat.CSV else "JSON lines"

    @property
    def suffix(self) -> str:
        return ".csv" if self is ExportFormat.CSV else ".jsonl"


_SUFFIXES = {".csv", ".jsonl", ".json", ".ndjson"}


@dataclass(frozen=True, slots=True)
class ExportChoice:
    path: Path
    """Absolute path of the file to write."""
    format: ExportFormat


@dataclass(frozen=True, slots=True)
class PathCheck:
    """The outcome of checking a typed path: the file, or why not, and whether it exists."""

    path: Path | None
    problem: str = ""
    exists: bool = False


def check_path(text: str, base: Path) -> PathCheck:
    """Resolve ``text`` (``~`` expanded, relative to ``base``) and say whether it can be written."""
    text = text.strip()
    if not text:
        return PathCheck(None, "enter the name of the file to write")
    if "\0" in text:
        return PathCheck(None, "the file name contains a NUL character")
    path = Path(os.path.expanduser(text))
    if not path.is_absolute():
        path = base / path
    path = Path(os.path.normpath(path))
    if text.endswith(("/", os.sep)) or path.is_dir():
        return PathCheck(None, f"{path} is a folder: add a file name")
    folder = path.parent
    if not folder.is_dir():
        return PathCheck(None, f"the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        return PathCheck(None, f"cannot write in the folder {folder}")
    if path.exists() and not path.is_file():
        return PathCheck(None, f"{path} exists and is not a regular file")
    return PathCheck(path, exists=path.exists())


def with_suffix(text: str, fmt: ExportFormat) -> str:
    """Swap a known export suffix for the format's one (other names are left alone)."""
    root, ext = os.path.splitext(text)
    if ext.lower() in _SUFFIXES:
        return root + fmt.suffix
    return text


class FormatButton(RadioButton):
    """A radio button whose mark is only drawn when it is chosen (readable in monochrome)."""

    def render(self) -> Content:
        self.BUTTON_INNER = "●" if self.value else " "
        return super().render()


class FormatSet(RadioSet):
    """The format choice. Enter exports in the chosen format; after the arrows moved to
    another format, the first Enter picks it (the file name follows) and the next exports.
    Space only picks."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "pick_or_export", "Export", show=False),
        Binding("space", "toggle_button", "Choose", show=False),
    ]

    def action_pick_or_export(self) -> None:
        if self._selected is not None:
            button = self._nodes[self._selected]
            if isinstance(button, RadioButton) and not button.value:
                button.value = True  # a new pick: shown first, exported by the next Enter
                return
        screen = self.screen
        if isinstance(screen, ExportDialog):
            screen.action_export()


class ExportDialog(ModalScreen[ExportChoice | None]):
    """Asks for a file and a format; dismisses with the choice, or ``None`` on cancel."""

    DEFAULT_CSS = """
    ExportDialog {
        align: center middle;
    }
    ExportDialog > #export-box {
        width: 72;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: round $accent;
        padding: 0 1;
        background: $surface;
    }
    ExportDialog #export-title {
        text-style: bold;
        width: 100%;
    }
    ExportDialog #export-path {
        width: 100%;
    }
    ExportDialog RadioSet {
        width: 100%;
        layout: horizontal;
        height: auto;
    }
    ExportDialog #export-problem {
        width: 100%;
        height: auto;
        min-height: 1;
    }
    ExportDialog #export-problem.-problem {
        text-style: bold;
    }
    ExportDialog #export-buttons {
        height: auto;
        width: 100%;
        align-horizontal: right;
    }
    ExportDialog #export-hint {
        width: 1fr;
        height: 3;
        content-align: left middle;
        color: $text-muted;
    }
    ExportDialog Button {
        margin-left: 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="export.cancel"),
        Binding("ctrl+s", "export", "Export", id="export.confirm"),
    ]

    def __init__(
        self,
        default: str = "otatui-history.csv",
        *,
        base: Path | None = None,
        fmt: ExportFormat = ExportFormat.CSV,
        what: str = "history",
    ) -> None:
        super().__init__()
        self._default = with_suffix(default, fmt)
        self._base = base
        self._format = fmt
        self._what = what
        self._confirm_replace: Path | None = None

    @property
    def base(self) -> Path:
        """The folder relative names are resolved against (the working directory by default)."""
        return self._base if self._base is not None else Path.cwd()

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box"):
            yield Label(f"Export the {self._what}", id="export-title")
            yield Label("File (relative names are written in the current folder):")
            yield Input(self._default, id="export-path", select_on_focus=False)
            with FormatSet(id="export-format"):
                for fmt in ExportFormat:
                    yield FormatButton(fmt.label, value=fmt is self._format, id=f"format-{fmt}")
            yield Static("", id="export-problem")
            with Horizontal(id="export-buttons"):
                yield Static("enter or ctrl+s: export\nesc: cancel", id="export-hint")
                yield Button("Export", id="export-ok", variant="primary")
                yield Button("Cancel", id="export-cancel")

    def on_mount(self) -> None:
        path_input = self.query_one("#export-path", Input)
        path_input.cursor_blink = not getattr(self.app, "frozen", False)  # stable snapshots
        path_input.focus()

    @property
    def chosen_format(self) -> ExportFormat:
        pressed = self.query_one(RadioSet).pressed_button
        if pressed is None or pressed.id is None:
            return self._format
        return ExportFormat(pressed.id.removeprefix("format-"))

    @on(RadioSet.Changed)
    def _format_changed(self, event: RadioSet.Changed) -> None:
        path_input = self.query_one("#export-path", Input)
        path_input.value = with_suffix(path_input.value, self.chosen_format)
        self._show("")

    @on(Input.Changed, "#export-path")
    def _path_changed(self) -> None:
        if self._confirm_replace is not None:
            self._show("")

    @on(Input.Submitted, "#export-path")
    def _submitted(self) -> None:
        self.action_export()

    @on(Button.Pressed, "#export-ok")
    def _ok(self) -> None:
        self.action_export()

    @on(Button.Pressed, "#export-cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_export(self) -> None:
        fmt = self.chosen_format
        check = check_path(self.query_one("#export-path", Input).value, self.base)
        if check.path is None:
            self._show(f"✗ {check.problem}")
            return
        if check.exists and self._confirm_replace != check.path:
            self._show(f"! {check.path.name} exists: press Enter again to replace it")
            self._confirm_replace = check.path
            return
        self.dismiss(ExportChoice(check.path, fmt))

    def _show(self, problem: str) -> None:
        if not problem:
            self._confirm_replace = None
        widget = self.query_one("#export-problem", Static)
        widget.update(problem)
        widget.set_class(bool(problem), "-problem")
