"""The demo site's life cycle: a site that could not start still stops at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from otatui.demo.script import DEVICES
from otatui.demo.site import DemoSite


@pytest.mark.timeout(15)
async def test_a_site_that_failed_to_start_stops(tmp_path: Path) -> None:
    (tmp_path / "payloads").write_text("a file where the payload folder goes")
    site = DemoSite(tmp_path, devices=DEVICES[:1])
    with pytest.raises(OSError):
        await site.start()
    await asyncio.wait_for(site.stop(), 5)
