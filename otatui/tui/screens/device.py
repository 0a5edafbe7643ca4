"""The Device screen: "why hasn't it started?", the offered manifest, live transfers, install
output and the status timeline of one device, with its actions (apply, cancel, retry, prefetch).

Anything that aborts an update or flashes a device asks first (`ConfirmScreen`). Each section is
redrawn only when the device changed (its `revision`) or, for the countdowns, once a second.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from otatui.tui.keys import bindings
from otatui.tui.screens.base import ScreenCommand, StateScreen
from otatui.tui.screens.confirm import ConfirmScreen
from otatui.tui.sections import (
    connection_text,
    manifest_text,
    output_text,
    timeline_text,
    title_text,
    transfer_text,
)
from otatui.tui.widgets.chrome import ota_footer, ota_header

SECTIONS = ("title", "connection", "manifest", "transfer", "output", "timeline")


class DeviceScreen(StateScreen):
    """One device in detail (pushed over the Fleet screen; Esc goes back)."""

    BINDINGS = bindings(
        "device.back", "device.apply", "device.cancel", "device.retry", "device.prefetch"
    )

    def __init__(self, name: str) -> None:
        super().__init__()
        self.device_name = name
        self._drawn: tuple[int, int] | None = None
        self._awaiting: str | None = None

    def compose(self) -> ComposeResult:
        yield ota_header(f"Device {self.device_name}")
        with VerticalScroll(id="device-body"):
            for section in SECTIONS:
                yield Static(id=f"device-{section}", classes="device-section", markup=False)
        yield ota_footer()

    def on_mount(self) -> None:
        self.refresh_state()
        self.query_one("#device-body").focus()

    def refresh_state(self) -> None:
        d = self.state.devices.get(self.device_name)
        if d is None:
            return
        now = self.backend.now()
        key = (d.revision, int(now))
        if key == self._drawn:
            return
        if self._awaiting != d.awaiting_apply:
            self._awaiting = d.awaiting_apply
            self.refresh_bindings()
        self._drawn = key
        local = self.backend.local_time
        mono = self.app.no_color
        texts: dict[str, Text] = {
            "title": title_text(d, mono=mono),
            "connection": connection_text(d, now, mono=mono),
            "manifest": manifest_text(d, self.backend.cached, mono=mono),
            "transfer": transfer_text(d, mono=mono),
            "output": output_text(d, local, mono=mono),
            "timeline": timeline_text(d, local, mono=mono),
        }
        for section, text in texts.items():
            text.rstrip()
            self.query_one(f"#device-{section}", Static).update(text)

    # -- actions -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Apply is offered only while an update waits for it (``apply = "confirm"``)."""
        if action == "apply":
            d = self.state.devices.get(self.device_name)
            return d is not None and d.awaiting_apply is not None
        return True

    def action_back(self) -> None:
        self.app.pop_screen()

    def _confirm(self, title: str, question: str, yes: str, then: Callable[[], object]) -> None:
        def answered(ok: bool | None) -> None:
            if ok:
                then()

        self.app.push_screen(ConfirmScreen(title, question, yes), answered)

    def action_cancel(self) -> None:
        name = self.device_name
        self._confirm(
            f"Cancel the update of {name}?",
            "The download or install is aborted and INSTALL_ABORTED is reported. "
            "Files already downloaded stay in the cache.",
            "Cancel update",
            lambda: self.ota.command("cancel", name),
        )

    def action_apply(self) -> None:
        d = self.state.devices[self.device_name]
        name = self.device_name
        if d.awaiting_apply is None:
            self.notify(f"{name}: no update is waiting to be applied", severity="warning")
            return
        if d.info.role == "bridge":
            how = (
                f"The files are pushed over {d.info.link or 'the link'} and installed on the "
                "device. Keep it powered and connected until it reports INSTALLED_VERSION."
            )
        else:
            how = "The install command runs on this machine with the downloaded files."
        self._confirm(
            f"Flash {d.awaiting_apply} onto {name}?",
            how,
            "Apply",
            lambda: self.ota.command("apply", name),
        )

    def action_retry(self) -> None:
        self.ota.command("retry", self.device_name)

    def action_prefetch(self) -> None:
        self.ota.prefetch([self.device_name])

    def screen_commands(self) -> Iterable[ScreenCommand]:
        name = self.device_name
        yield ScreenCommand(
            f"Apply on {name}", "Install the update waiting for you", self.action_apply
        )
        yield ScreenCommand(f"Cancel {name}", "Abort the update (asks first)", self.action_cancel)
        yield ScreenCommand(f"Retry {name}", "Start the offered manifest again", self.action_retry)
        yield ScreenCommand(
            f"Prefetch {name}", "Download its payload into the cache", self.action_prefetch
        )
        yield ScreenCommand("Back to the fleet", "Close this device", self.action_back)
