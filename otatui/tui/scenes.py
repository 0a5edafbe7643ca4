"""Named pictures of the frozen app: what the snapshot tests compare and `screenshots` writes.

A `Scene` is a device to open (or none) and keys to press, starting from the frozen app's Fleet
screen. `SCENES` covers every screen and modal of the core TUI; the Manifests, Transfers and
History screens are appended when their modules are present (`registry.top_screens`).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.pilot import Pilot

from otatui.tui.registry import MissingScreen, top_screens


@dataclass(frozen=True, slots=True)
class Scene:
    name: str
    press: tuple[str, ...] = ()
    device: str | None = None
    """Open this device's screen first."""
    description: str = ""

    async def prepare(self, pilot: Pilot[None]) -> None:
        """Bring the app to the scene (before the key presses)."""
        await pilot.pause()
        if self.device is not None:
            from otatui.tui.screens.fleet import FleetScreen

            screen = pilot.app.screen
            assert isinstance(screen, FleetScreen), f"expected the fleet screen, got {screen}"
            screen.open_device(self.device)
            await pilot.pause()


SCENES: tuple[Scene, ...] = (
    Scene("fleet", description="every device, its state, versions and progress"),
    Scene("fleet_attention", ("f",), description="filtered by state: needs attention"),
    Scene("fleet_filter", ("slash", "p", "u", "m", "p", "enter"), description="text filter"),
    Scene("fleet_sorted", ("s",), description="sorted by state"),
    Scene("device_downloading", device="pump-7", description="a download with rate and ETA"),
    Scene("device_installing", device="valve-2", description="install output"),
    Scene("device_awaiting_apply", device="sensor-1", description="a serial bridge"),
    Scene("device_lan_push", device="sensor-2", description="a LAN bridge pushing"),
    Scene("device_offline", device="meter-3", description="retry countdown"),
    Scene("device_failed", device="pump-8", description="a failed install"),
    Scene("device_monitor", device="tank-4", description="a monitor: watches, changes nothing"),
    Scene("confirm_cancel", ("c",), device="pump-7", description="cancel asks first"),
    Scene("confirm_apply", ("a",), device="sensor-1", description="flashing asks first"),
    Scene("help", ("question_mark",), description="bindings and statuses"),
)

_TOP_KEYS = {"manifests": "2", "transfers": "3", "history": "4"}


def all_scenes() -> list[Scene]:
    """`SCENES` plus one scene per other top-level screen that is present."""
    extra = [
        Scene(top.mode, (_TOP_KEYS[top.mode],), description=top.title)
        for top in top_screens()
        if top.mode in _TOP_KEYS and not isinstance(top.factory(), MissingScreen)
    ]
    return [*SCENES, *extra]
