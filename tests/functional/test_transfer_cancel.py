"""Cancelling a raw-transport download mid-body is clean: the worker threads end, no future is
left with an unretrieved exception, the socket is closed once, nothing reaches stderr or the
log above DEBUG (under the TUI any stray output garbles the screen)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from transfer_helpers import FileServer, Resource, payload
from wait_helpers import eventually

from otatui.otau import parse_payload_item
from otatui.store import Store
from otatui.transfer import ContentAuth, Downloader

TOKEN = "Zt9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK9y"
CONTENT = "/provision/download?id="
MiB = 1 << 20
ROUNDS = 6


@pytest.fixture
def server() -> Iterator[FileServer]:
    with FileServer() as srv:
        yield srv


def loop_reports() -> list[dict[str, Any]]:
    """Every call of the running loop's exception handler ("never retrieved" and the like)."""
    calls: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: calls.append(ctx))
    return calls


def download_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("otatui-download")]


async def cancel_mid_body(server: FileServer, tmp_path: Path, how: str) -> None:
    store = Store.open(tmp_path / "otatui.db")
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            downloader = Downloader(client, store, tmp_path / "cache", backoff_s=0.01)
            item = parse_payload_item("fw.bin")
            done = 0

            async def watch() -> None:
                nonlocal done
                async for p in downloader.download(item, ContentAuth(server.base_url, TOKEN)):
                    done = p.done

            task = asyncio.create_task(watch())
            await eventually(lambda: done >= 200_000, 20, every=0.002)
            if how == "task":  # the watcher goes away (a cancel in the UI)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await downloader.aclose()
            else:  # the app quits: the downloader is closed under its watcher
                await downloader.aclose()
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await task
    finally:
        store.close()


@pytest.mark.parametrize("how", ["task", "close"])
async def test_cancel_mid_body_prints_nothing_and_leaves_no_unretrieved_future(
    server: FileServer,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    how: str,
):
    server.add(
        CONTENT + "fw.bin",
        Resource(payload(4 * MiB), token=TOKEN, delay_per_block_s=0.01),
    )
    reports = loop_reports()
    caplog.set_level(logging.DEBUG)
    for n in range(ROUNDS):  # the race between the cut and the reading thread: try it a few times
        await cancel_mid_body(server, tmp_path / str(n), how)
        await asyncio.sleep(0.05)  # late completions of worker futures reach the loop
        gc.collect()  # an abandoned future with an exception reports it when collected
        await asyncio.sleep(0)
    await eventually(lambda: not download_threads(), 10)
    out, err = capfd.readouterr()
    assert reports == []
    assert err == "" and out == ""
    loud = [r for r in caplog.records if r.levelno > logging.DEBUG]
    assert loud == []
