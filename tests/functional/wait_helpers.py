"""Waiting in the functional tests: `eventually(check)` polls a condition with a deadline and fails
with one line that says what was awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(
    check: Callable[[], object], timeout: float = 30, what: str = "", *, every: float = 0.05
) -> None:
    """Return once `check()` is true; AssertionError after `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(every)
    except TimeoutError:
        raise AssertionError(f"not within {timeout} s: {what or check}") from None
