"""`python -m otatui.tui.screenshots DIR`: write an SVG of every scene of the frozen app.

Used by `make screenshots`. Each scene (`otatui.tui.scenes`) is written at 120×40 as
``DIR/<scene>.svg``, and the Fleet screen also at 80×24 (``fleet-80x24.svg``).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from otatui.tui.scenes import Scene, all_scenes
from otatui.tui.snapshot_app import snapshot_app

SIZE = (120, 40)
SMALL = (80, 24)


async def screenshot(scene: Scene, size: tuple[int, int] = SIZE) -> str:
    """The SVG of one scene."""
    app = snapshot_app()
    async with app.run_test(size=size) as pilot:
        await scene.prepare(pilot)
        if scene.press:
            await pilot.press(*scene.press)
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        return app.export_screenshot(title=f"otatui: {scene.name.replace('_', ' ')}")


async def render_all() -> dict[str, str]:
    """File name -> SVG of every scene (and the Fleet screen at 80×24)."""
    out = {f"{scene.name}.svg": await screenshot(scene) for scene in all_scenes()}
    out["fleet-80x24.svg"] = await screenshot(Scene("fleet"), SMALL)
    return out


def write_all(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, svg in asyncio.run(render_all()).items():
        path = folder / name
        path.write_text(svg, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m otatui.tui.screenshots DIR", file=sys.stderr)
        return 2
    for path in write_all(Path(args[0])):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
