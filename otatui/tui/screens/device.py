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

from otatui.tui.keys import bindings, shown_key
from otatui.tui.records import DeviceView
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
DEVICE_ACTIONS = frozenset({"apply", "cancel", "retry", "prefetch"})


def available_actions(d: DeviceView) -> frozenset[str]:
    """What the technician can do for the device now: apply while an update waits for it;
    cancel while one is in progress or waiting; retry after a failed or aborted update of a
    valid manifest (an invalid one can only fail again: see `retry_refusal`);
    prefetch when a valid manifest is offered. A monitor changes nothing."""
    if d.info.role == "monitor":
        return frozenset()
    out: set[str] = set()
    if d.awaiting_apply is not None:
        out.add("apply")
    if d.updating or d.awaiting_apply is not None:
        out.add("cancel")
    status = d.status
    if status is not None and status.is_error and d.offered is not None and d.offered.valid:
        out.add("retry")
    if d.offered is not None and d.offered.valid and d.offered.items:
        out.add("prefetch")
    return frozenset(out)


def retry_refusal(d: DeviceView) -> str:
    """Why retry is not offered although the update failed ("" when it is, or nothing
    failed)."""
    status = d.status
    if status is None or not status.is_error or d.offered is None or d.offered.valid:
        return ""
    return RETRY_INVALID


RETRY_INVALID = "the offered manifest is invalid; it needs a new offer from the cloud"


class DeviceScreen(StateScreen):
    """One device in detail (pushed over the Fleet screen; Esc goes back)."""

    BINDINGS = bindings(
        "device.back", "device.apply", "device.cancel", "device.retry", "device.prefetch"
    )

    def __init__(self, name: str) -> None:
        super().__init__()
        self.device_name = name
        self._drawn: tuple[int, int] | None = None
        self._offered_actions: frozenset[str] = frozenset()

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
        offered = available_actions(d)
        if retry_refusal(d):
            offered |= {"retry refused"}  # the footer greys retry out
        if offered != self._offered_actions:
            self._offered_actions = offered
            self.refresh_bindings()
        self._drawn = key
        local = self.backend.local_time
        mono = self.app.no_color
        texts: dict[str, Text] = {
            "title": title_text(d, mono=mono),
            "connection": connection_text(
                d, now, mono=mono, retry_key=shown_key("device.retry", self.ota.keys)
            ),
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
        """Only the actions that can do something now are offered (see `available_actions`)."""
        if action not in DEVICE_ACTIONS:
            return True
        d = self.state.devices.get(self.device_name)
        if d is None:
            return False
        if action in available_actions(d):
            return True
        if action == "retry" and retry_refusal(d):
            return None  # shown, greyed: the Now line says why
        return False

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
            self.app.notify(f"{name}: no update is waiting to be applied", severity="warning")
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
        d = self.state.devices.get(name)
        offered = available_actions(d) if d is not None else frozenset()
        yield from (c for c in self._commands(name) if c.action in offered or not c.action)

    def _commands(self, name: str) -> Iterable[ScreenCommand]:
        yield ScreenCommand(
            f"Apply on {name}", "Install the update waiting for you", self.action_apply, "apply"
        )
        yield ScreenCommand(
            f"Cancel {name}", "Abort the update (asks first)", self.action_cancel, "cancel"
        )
        yield ScreenCommand(
            f"Retry {name}", "Start the offered manifest again", self.action_retry, "retry"
        )
        yield ScreenCommand(
            f"Prefetch {name}",
            "Download its payload into the cache",
            self.action_prefetch,
            "prefetch",
        )
        yield ScreenCommand("Back to the fleet", "Close this device", self.action_back)
