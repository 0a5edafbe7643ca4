"""QA: the command palette lists the current screen's commands first."""

from __future__ import annotations

from textual.command import CommandList, CommandPalette

from otatui.tui.app import OtaApp
from otatui.tui.frozen import FrozenBackend
from otatui.tui.screens.device import DeviceScreen

SIZE = (80, 24)


def shown(app: OtaApp) -> list[str]:
    palette = app.screen
    assert isinstance(palette, CommandPalette)
    options = palette.query_one(CommandList)
    return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]


async def test_the_screens_commands_come_first() -> None:
    app = OtaApp(FrozenBackend(), frozen=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = DeviceScreen("sensor-1")
        await app.push_screen(screen)
        await pilot.pause()
        own = [c.title for c in screen.screen_commands()]
        await pilot.press("ctrl+p")
        await pilot.pause(0.5)
        titles = shown(app)
        first = [t.splitlines()[0] for t in titles[: len(own)]]
        assert first == own
        assert any(t.startswith("Go to History") for t in titles[len(own) :])
        await pilot.press("escape")
        await pilot.pause()
        # searching: a screen command wins a tie with a general one
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"back")
        await pilot.pause(0.5)
        assert shown(app)[0].startswith("Back to the fleet")
