"""Connections: the tasks a listener serves are counted and ended together."""

from __future__ import annotations

import asyncio

from otatui.connector.connections import Connections


async def test_close_all_ends_every_connection_still_served() -> None:
    connections = Connections()
    ended: list[str] = []

    async def serve(name: str, forever: bool) -> None:
        with connections.serving():
            try:
                await asyncio.sleep(3600 if forever else 0)
            finally:
                ended.append(name)

    quick = asyncio.create_task(serve("quick", forever=False))
    slow = [asyncio.create_task(serve(f"slow {i}", forever=True)) for i in range(2)]
    await quick
    await asyncio.sleep(0)
    assert len(connections) == 2
    await asyncio.wait_for(connections.close_all(), 2)
    assert all(task.cancelled() for task in slow)
    assert sorted(ended) == ["quick", "slow 0", "slow 1"] and len(connections) == 0
    await connections.close_all()  # nothing left: returns at once
