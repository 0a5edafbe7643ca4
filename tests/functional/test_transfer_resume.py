"""A download cut mid-body and resumed with Range says so in its progress: `resumed` (how many
times this download continued after a cut) and `resumed_at` (the byte offset of the last one);
a server that ignores Range restarts from zero, which is not a resume."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from transfer_helpers import FileServer, Resource, payload

from otatui.otau import parse_payload_item
from otatui.store import Store
from otatui.transfer import ContentAuth, Downloader, Progress

TOKEN = "Zt9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK9y"
CONTENT = "/provision/download?id="
MiB = 1 << 20


@pytest.fixture
def server() -> Iterator[FileServer]:
    with FileServer() as srv:
        yield srv


@pytest.fixture(params=["raw", "httpx"])
async def downloader(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Downloader]:
    store = Store.open(tmp_path / "otatui.db")
    try:
        async with (
            httpx.AsyncClient(timeout=10) as client,
            Downloader(
                client,
                store,
                tmp_path / "cache",
                backoff_s=0.01,
                max_backoff_s=0.05,
                raw=request.param == "raw",
            ) as d,
        ):
            yield d
    finally:
        store.close()


async def progress_of(d: Downloader, server: FileServer, resource: Resource) -> list[Progress]:
    server.add(CONTENT + "fw.bin", resource)
    item = parse_payload_item(f"fw.bin#sha256={resource.sha256}")
    return [p async for p in d.download(item, ContentAuth(server.base_url, TOKEN))]


async def test_two_cuts_resumed_show_in_the_progress(server: FileServer, downloader: Downloader):
    resource = Resource(payload(2 * MiB), token=TOKEN, drops=[300_000, 700_000])
    seen = await progress_of(downloader, server, resource)
    last = seen[-1]
    assert last.result is not None and last.result.size == 2 * MiB
    assert (last.resumed, last.resumed_at) == (2, 1_000_000)
    counts = [p.resumed for p in seen]
    assert counts == sorted(counts) and counts[0] == 0
    first_resume = next(p for p in seen if p.resumed == 1)
    assert first_resume.resumed_at == 300_000


async def test_a_restart_from_zero_is_not_a_resume(server: FileServer, downloader: Downloader):
    resource = Resource(payload(MiB), token=TOKEN, range_mode="ignore", drops=[400_000])
    seen = await progress_of(downloader, server, resource)
    assert seen[-1].result is not None
    assert {(p.resumed, p.resumed_at) for p in seen} == {(0, None)}


async def test_a_download_without_cuts_and_a_cache_hit_say_no_resume(
    server: FileServer, downloader: Downloader
):
    resource = Resource(payload(MiB), token=TOKEN)
    for _ in range(2):  # the second one comes from the cache
        seen = await progress_of(downloader, server, resource)
        assert seen[-1].result is not None
        assert {(p.resumed, p.resumed_at) for p in seen} == {(0, None)}
