"""Stopping the demo's script task: its error is raised, our own cancellation is kept."""

from __future__ import annotations

import asyncio

import pytest

from otatui.demo.command import stop_task


async def test_a_script_that_failed_raises_its_error() -> None:
    async def broken() -> None:
        raise ValueError("bad offer")

    task = asyncio.create_task(broken())
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="bad offer"):
        await stop_task(task)


async def test_a_cancel_while_the_script_stops_is_not_swallowed() -> None:
    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.5)

    script = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    stopper = asyncio.create_task(stop_task(script))
    await asyncio.sleep(0.05)
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    script.cancel()
    await asyncio.gather(script, return_exceptions=True)
