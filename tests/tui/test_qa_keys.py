"""QA: the screen tabs show the keys as the config's [keys] remaps them."""

from __future__ import annotations

import html

from otatui.tui.app import OtaApp
from otatui.tui.frozen import FrozenBackend
from otatui.tui.widgets.chrome import tabs_text


def test_tabs_follow_the_remap() -> None:
    assert "? Help" in tabs_text("fleet").plain
    text = tabs_text("help", {"app.help": "h,f1", "app.fleet": "ctrl+1"}).plain
    assert "[h Help]" in text and "ctrl+1 Fleet" in text and "?" not in text


async def test_the_header_shows_the_remapped_help_key() -> None:
    app = OtaApp(FrozenBackend(), frozen=True, keys={"app.help": "h"})
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        picture = html.unescape(app.export_screenshot()).replace("\xa0", " ")
        assert "h Help" in picture and "? Help" not in picture
