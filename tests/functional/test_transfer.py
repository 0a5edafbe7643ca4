"""Downloads over real sockets on 127.0.0.1: our file server (which records every request's
headers and misbehaves on demand) as connector and external host, and the local connector."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from connector_helpers import make_cert
from transfer_helpers import FileServer, Resource, payload
from wait_helpers import eventually

from otatui.connector import Connector
from otatui.otau import PayloadItem, parse_payload_item
from otatui.store import Store
from otatui.transfer import (
    TOKEN_HEADER,
    ContentAuth,
    Downloader,
    DownloadError,
    Progress,
    materialize,
)

TOKEN = "Zt9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK9y"
MiB = 1 << 20
CONTENT = "/provision/download?id="


@pytest.fixture
def server() -> Iterator[FileServer]:
    with FileServer() as srv:
        yield srv


@pytest.fixture
def external() -> Iterator[FileServer]:
    with FileServer() as srv:
        yield srv


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "otatui.db")
    yield s
    s.close()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


def make_downloader(client: httpx.AsyncClient, store: Store, tmp_path: Path, **kw) -> Downloader:
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("max_backoff_s", 0.05)
    return Downloader(client, store, tmp_path / "cache", **kw)


@pytest.fixture(params=["raw", "httpx"])
def transport(request: pytest.FixtureRequest) -> str:
    """Every test on the ``downloader`` fixture runs over both transports: the raw socket +
    pump (http URLs by default) and the shared httpx client (https without a TLS context,
    proxies)."""
    return str(request.param)


@pytest.fixture
async def downloader(
    client: httpx.AsyncClient, store: Store, tmp_path: Path, transport: str
) -> AsyncIterator[Downloader]:
    async with make_downloader(client, store, tmp_path, raw=transport == "raw") as d:
        yield d


def content_item(content_id: str, sha256: str | None = None) -> PayloadItem:
    return parse_payload_item(content_id + (f"#sha256={sha256}" if sha256 else ""))


def url_item(url: str, sha256: str | None = None) -> PayloadItem:
    return parse_payload_item(url + (f"#sha256={sha256}" if sha256 else ""))


async def collect(d: Downloader, item: PayloadItem, auth: ContentAuth | None) -> list[Progress]:
    return [p async for p in d.download(item, auth)]


def serve_content(server: FileServer, content_id: str, resource: Resource) -> Resource:
    resource.token = TOKEN
    return server.add(CONTENT + content_id, resource)


def auth_for(server: FileServer | Connector) -> ContentAuth:
    base = server.base_url if isinstance(server, FileServer) else server.http_url
    return ContentAuth(base, TOKEN)


# ----- download and verify ---------------------------------------------------------------------


async def test_content_download_verified_with_progress(
    server: FileServer, downloader: Downloader, store: Store
):
    r = serve_content(server, "fw.bin", Resource(payload(3 * MiB + 17)))
    progress = await collect(downloader, content_item("fw.bin", r.sha256), auth_for(server))
    result = progress[-1].result
    assert result is not None and all(p.result is None for p in progress[:-1])
    assert result.sha256 == r.sha256 and result.size == len(r.body)
    assert result.path.read_bytes() == r.body
    assert result.path == downloader.cache_dir / "sha256" / r.sha256
    assert [p.done for p in progress] == sorted(p.done for p in progress)
    assert progress[-1].done == progress[-1].total == len(r.body)
    (req,) = server.requests_for(CONTENT + "fw.bin")
    assert req.headers[TOKEN_HEADER.lower()] == TOKEN
    assert req.headers["accept-encoding"] == "identity"
    assert store.transfers() == []
    assert store.get_cache(f"content {server.base_url} fw.bin") is not None
    assert list((downloader.cache_dir / "partial").iterdir()) == []


async def test_content_id_is_query_encoded(server: FileServer, downloader: Downloader):
    r = serve_content(server, "fw+1.0+%C3%A9.bin", Resource(b"x" * 1000))
    got = await downloader.fetch(content_item("fw 1.0 é.bin"), auth_for(server))
    assert got.sha256 == r.sha256


@pytest.mark.parametrize(
    ("framing", "range_mode"),
    [("chunked+length", "206"), ("chunked", "200"), ("length", "200"), ("length", "206")],
)
async def test_framings_and_range_answers_with_drops(
    server: FileServer, downloader: Downloader, framing: str, range_mode: str
):
    r = serve_content(
        server,
        "fw.bin",
        Resource(
            payload(2 * MiB + 5),
            chunked=framing.startswith("chunked"),
            content_length=framing != "chunked",
            range_mode=range_mode,  # type: ignore[arg-type]
            drops=[300_000, 700_000],
        ),
    )
    got = await downloader.fetch(content_item("fw.bin", r.sha256), auth_for(server))
    assert got.path.read_bytes() == r.body
    ranges = [q.headers.get("range") for q in server.requests_for(CONTENT + "fw.bin")]
    assert ranges == [None, "bytes=300000-", "bytes=1000000-"]


async def test_several_drops_resumed_with_range_and_if_range(
    server: FileServer, downloader: Downloader
):
    drops = [100_000] * 6
    r = serve_content(server, "fw.bin", Resource(payload(MiB), drops=list(drops)))
    got = await downloader.fetch(content_item("fw.bin"), auth_for(server))
    assert got.sha256 == r.sha256
    reqs = server.requests_for(CONTENT + "fw.bin")
    assert len(reqs) == 7
    assert [q.headers.get("range") for q in reqs[1:]] == [
        f"bytes={100_000 * i}-" for i in range(1, 7)
    ]
    assert all(q.headers.get("if-range") == '"v1"' for q in reqs[1:])


async def test_server_ignoring_range_restarts_from_zero(server: FileServer, downloader: Downloader):
    r = serve_content(
        server, "fw.bin", Resource(payload(MiB), range_mode="ignore", drops=[400_000])
    )
    got = await downloader.fetch(content_item("fw.bin", r.sha256), auth_for(server))
    assert got.path.read_bytes() == r.body


async def test_file_changed_between_attempts_restarts_from_zero(
    server: FileServer, downloader: Downloader
):
    """If-Range with the old ETag: the server answers 200 with the new file."""
    old = serve_content(server, "fw.bin", Resource(payload(MiB, seed=1), drops=[500_000]))
    task = asyncio.create_task(downloader.fetch(content_item("fw.bin"), auth_for(server)))
    await eventually(lambda: len(server.requests_for(CONTENT + "fw.bin")) >= 1, 20, every=0.002)
    new = Resource(payload(MiB, seed=2), etag='"v2"', token=TOKEN)
    server.add(CONTENT + "fw.bin", new)
    got = await task
    assert got.sha256 == new.sha256 != old.sha256


async def test_stale_206_with_a_new_etag_is_not_spliced(server: FileServer, downloader: Downloader):
    """A server that ignores If-Range (aiohttp's FileResponse) and sends 206 of a new file."""
    serve_content(server, "fw.bin", Resource(payload(MiB, seed=1), drops=[500_000]))
    task = asyncio.create_task(downloader.fetch(content_item("fw.bin"), auth_for(server)))
    await eventually(lambda: len(server.requests_for(CONTENT + "fw.bin")) >= 1, 20, every=0.002)
    new = Resource(payload(MiB, seed=2), etag='"v2"', token=TOKEN, honor_if_range=False)
    server.add(CONTENT + "fw.bin", new)
    got = await task
    assert got.path.read_bytes() == new.body
    ranges = [q.headers.get("range") for q in server.requests_for(CONTENT + "fw.bin")]
    assert ranges[-1] is None  # started over


async def test_retries_are_bounded_and_end_in_one_line_error(
    server: FileServer, downloader: Downloader, store: Store
):
    serve_content(server, "fw.bin", Resource(payload(MiB), statuses=[503] * 50))
    with pytest.raises(DownloadError) as err:
        await downloader.fetch(content_item("fw.bin"), auth_for(server))
    message = str(err.value)
    assert "\n" not in message and "HTTP 503" in message and "fw.bin" in message
    assert TOKEN not in message
    assert len(server.requests_for(CONTENT + "fw.bin")) == downloader.retries + 1


async def test_connection_refused_is_an_honest_error(
    client: httpx.AsyncClient, store: Store, tmp_path: Path
):
    with FileServer() as gone:
        base = gone.base_url
    async with make_downloader(client, store, tmp_path, retries=2) as d:
        with pytest.raises(DownloadError, match="cannot connect"):
            await d.fetch(content_item("fw.bin"), ContentAuth(base, TOKEN))


async def test_401_and_404_are_not_retried(server: FileServer, downloader: Downloader):
    serve_content(server, "fw.bin", Resource(b"x"))
    with pytest.raises(DownloadError, match="refused the device token"):
        await downloader.fetch(content_item("fw.bin"), ContentAuth(server.base_url, "wrong"))
    with pytest.raises(DownloadError, match="not found"):
        await downloader.fetch(content_item("missing.bin"), auth_for(server))
    assert len(server.requests) == 2


async def test_the_event_loop_keeps_running_during_a_download(
    server: FileServer, downloader: Downloader
):
    """Connect, receive, write and hash all happen off the loop: it never stalls."""
    r = serve_content(server, "fw.bin", Resource(payload(16 * MiB), delay_per_block_s=0.002))
    gaps: list[float] = []
    loop = asyncio.get_running_loop()

    async def ticker() -> None:
        last = loop.time()
        while True:
            await asyncio.sleep(0.005)
            now = loop.time()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    try:
        got = await downloader.fetch(content_item("fw.bin", r.sha256), auth_for(server))
    finally:
        ticking.cancel()
    assert got.sha256 == r.sha256
    assert len(gaps) > 50 and max(gaps) < 0.25, (len(gaps), max(gaps))


# ----- restart of otatui --------------------------------------------------------------------------


async def test_cancel_keeps_partial_and_new_downloader_resumes(
    server: FileServer, client: httpx.AsyncClient, store: Store, tmp_path: Path
):
    r = serve_content(server, "fw.bin", Resource(payload(2 * MiB), delay_per_block_s=0.01))
    item = content_item("fw.bin", r.sha256)
    first = make_downloader(client, store, tmp_path)
    done = 0

    async def watch() -> None:
        nonlocal done
        async for p in first.download(item, auth_for(server)):
            done = p.done

    task = asyncio.create_task(watch())
    await eventually(lambda: done >= 300_000, 20, every=0.002)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await first.aclose()
    (state,) = store.transfers()
    assert state.bytes_done >= 300_000 and state.validator == '"v1"'
    assert Path(state.partial_path).stat().st_size == state.bytes_done

    server.resources[CONTENT + "fw.bin"].delay_per_block_s = 0
    async with make_downloader(client, store, tmp_path) as second:
        got = await second.fetch(item, auth_for(server))
    assert got.path.read_bytes() == r.body
    last = server.requests_for(CONTENT + "fw.bin")[-1]
    assert last.headers["range"] == f"bytes={state.bytes_done}-"
    assert store.transfers() == []


KILLED_DOWNLOAD = """
import asyncio, sys
from pathlib import Path
import httpx
from otatui.otau import parse_payload_item
from otatui.store import Store
from otatui.transfer import ContentAuth, Downloader

async def main() -> None:
    base, token, cache, db = sys.argv[1:5]
    store = Store.open(db)
    async with httpx.AsyncClient(timeout=10) as client:
        async with Downloader(client, store, Path(cache)) as d:
            async for p in d.download(parse_payload_item("fw.bin"), ContentAuth(base, token)):
                print(p.done, flush=True)

asyncio.run(main())
"""


async def test_kill_9_mid_download_then_resume_from_the_partial_file(
    server: FileServer, client: httpx.AsyncClient, tmp_path: Path
):
    r = serve_content(server, "fw.bin", Resource(payload(4 * MiB), delay_per_block_s=0.005))
    db, cache = tmp_path / "otatui.db", tmp_path / "cache"
    Store.open(db).close()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        KILLED_DOWNLOAD,
        server.base_url,
        TOKEN,
        str(cache),
        str(db),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async for line in proc.stdout:
            if int(line) > 2_500_000:  # the state was saved at least once by now (every 2 s)
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
    (part,) = (cache / "partial").iterdir()
    on_disk = part.stat().st_size
    assert 0 < on_disk < len(r.body)

    server.resources[CONTENT + "fw.bin"].delay_per_block_s = 0
    store = Store.open(db)
    try:
        async with make_downloader(client, store, tmp_path) as d:
            got = await d.fetch(content_item("fw.bin", r.sha256), auth_for(server))
        assert got.path.read_bytes() == r.body
        resumed = server.requests_for(CONTENT + "fw.bin")[-1].headers["range"]
        assert resumed == f"bytes={on_disk}-"  # the file on disk, not the last saved count
    finally:
        store.close()


# ----- verification ----------------------------------------------------------------------------


async def test_sha256_mismatch_refused_and_partial_deleted(
    server: FileServer, downloader: Downloader, store: Store
):
    r = serve_content(server, "fw.bin", Resource(payload(MiB)))
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(DownloadError) as err:
        await downloader.fetch(content_item("fw.bin", wrong), auth_for(server))
    message = str(err.value)
    assert "sha256 mismatch" in message and wrong[:12] in message and r.sha256[:12] in message
    assert "\n" not in message
    assert list((downloader.cache_dir / "partial").iterdir()) == []
    assert list((downloader.cache_dir / "sha256").iterdir()) == []
    assert store.transfers() == [] and store.get_cache(f"content {server.base_url} fw.bin") is None


async def test_short_body_with_no_more_retries_fails(
    client: httpx.AsyncClient, server: FileServer, store: Store, tmp_path: Path
):
    serve_content(server, "fw.bin", Resource(payload(MiB), drops=[1000] + [0] * 10))
    async with make_downloader(client, store, tmp_path, retries=2) as d:
        with pytest.raises(DownloadError, match=r"connection (closed|lost)"):
            await d.fetch(content_item("fw.bin"), auth_for(server))
    (state,) = store.transfers()  # kept for a later resume
    assert state.bytes_done == 1000


# ----- credentials --------------------------------------------------------------------------------


async def test_no_credential_reaches_an_external_host(
    server: FileServer, external: FileServer, store: Store, tmp_path: Path
):
    """Even through a shared client that carries an Authorization header and cookies."""
    ext = external.add("/pkg/app.tar.gz", Resource(payload(MiB), set_cookie="ext=1; Path=/"))
    serve_content(server, "fw.bin", Resource(payload(1000), set_cookie="sess=abc; Path=/"))
    async with (
        httpx.AsyncClient(
            timeout=10, headers={"Authorization": "Bearer leak"}, cookies={"jar": "leak"}
        ) as leaky,
        make_downloader(leaky, store, tmp_path) as d,
    ):
        await d.fetch(content_item("fw.bin"), auth_for(server))  # a cookie from 127.0.0.1
        item = url_item(external.url("/pkg/app.tar.gz"), ext.sha256)
        got = await d.fetch(item, auth_for(server))  # auth given, must be ignored
        ext.drops.append(1000)
        d.reuse_unpinned_s = 0
        await d.fetch(url_item(external.url("/pkg/app.tar.gz")), auth_for(server))
    assert got.sha256 == ext.sha256
    reqs = external.requests
    assert len(reqs) == 3
    for req in reqs:
        assert TOKEN_HEADER.lower() not in req.headers
        assert "authorization" not in req.headers and "cookie" not in req.headers
        assert TOKEN not in repr(req.headers)
        assert set(req.headers) <= {"host", "user-agent", "accept-encoding", "range", "if-range"}


async def test_token_not_forwarded_across_a_cross_origin_redirect(
    server: FileServer, external: FileServer, downloader: Downloader
):
    ext = external.add("/mirror/fw.bin", Resource(payload(MiB)))
    serve_content(server, "fw.bin", Resource(b"", redirect=external.url("/mirror/fw.bin")))
    got = await downloader.fetch(content_item("fw.bin", ext.sha256), auth_for(server))
    assert got.sha256 == ext.sha256
    (first,) = server.requests_for(CONTENT + "fw.bin")
    assert first.headers[TOKEN_HEADER.lower()] == TOKEN
    (hop,) = external.requests_for("/mirror/fw.bin")
    assert TOKEN_HEADER.lower() not in hop.headers


async def test_token_kept_on_a_same_origin_redirect(server: FileServer, downloader: Downloader):
    moved = serve_content(server, "fw-v2.bin", Resource(payload(1000)))
    serve_content(
        server, "fw.bin", Resource(b"", redirect=CONTENT + "fw-v2.bin", redirect_status=307)
    )
    got = await downloader.fetch(content_item("fw.bin"), auth_for(server))
    assert got.sha256 == moved.sha256
    assert server.requests_for(CONTENT + "fw-v2.bin")[0].headers[TOKEN_HEADER.lower()] == TOKEN


async def test_redirect_loops_and_bad_targets_refused(
    server: FileServer, external: FileServer, downloader: Downloader
):
    server.add("/loop", Resource(b"", redirect="/loop"))
    with pytest.raises(DownloadError, match="redirects"):
        await downloader.fetch(url_item(server.url("/loop")))
    server.add("/file", Resource(b"", redirect="file:///etc/passwd"))
    with pytest.raises(DownloadError, match="non-http"):
        await downloader.fetch(url_item(server.url("/file")))


# ----- cache, single flight, materialize ---------------------------------------------------------


async def test_second_device_served_from_cache_with_zero_requests(
    server: FileServer, downloader: Downloader
):
    r = serve_content(server, "fw.bin", Resource(payload(MiB)))
    first = await downloader.fetch(content_item("fw.bin", r.sha256), auth_for(server))
    other_device = ContentAuth(server.base_url, "another-device-token")
    pinned = await collect(downloader, content_item("fw.bin", r.sha256), other_device)
    unpinned = await downloader.fetch(content_item("fw.bin"), other_device)
    assert pinned[-1].result == first == unpinned
    assert len(pinned) == 1 and pinned[0].done == pinned[0].total == len(r.body)
    assert len(server.requests) == 1


async def test_pinned_file_from_another_source_needs_no_request(
    server: FileServer, external: FileServer, downloader: Downloader
):
    r = serve_content(server, "fw.bin", Resource(payload(1000)))
    await downloader.fetch(content_item("fw.bin", r.sha256), auth_for(server))
    got = await downloader.fetch(url_item(external.url("/x/fw.bin"), r.sha256))
    assert got.sha256 == r.sha256 and external.requests == []


async def test_unpinned_item_is_downloaded_again_after_the_reuse_window(
    server: FileServer, downloader: Downloader
):
    serve_content(server, "fw.bin", Resource(payload(1000)))
    downloader.reuse_unpinned_s = 0.0
    await downloader.fetch(content_item("fw.bin"), auth_for(server))
    await asyncio.sleep(0.01)
    await downloader.fetch(content_item("fw.bin"), auth_for(server))
    assert len(server.requests) == 2


async def test_concurrent_requests_share_one_download(server: FileServer, downloader: Downloader):
    r = serve_content(server, "fw.bin", Resource(payload(2 * MiB), delay_per_block_s=0.002))
    results = await asyncio.gather(
        *(
            downloader.fetch(content_item("fw.bin"), ContentAuth(server.base_url, TOKEN))
            for _ in range(5)
        )
    )
    assert {res.sha256 for res in results} == {r.sha256}
    assert len(server.requests) == 1


async def test_one_watcher_leaving_does_not_cancel_the_shared_download(
    server: FileServer, downloader: Downloader
):
    r = serve_content(server, "fw.bin", Resource(payload(2 * MiB), delay_per_block_s=0.002))
    item = content_item("fw.bin")
    staying = asyncio.create_task(downloader.fetch(item, auth_for(server)))
    leaving = asyncio.create_task(downloader.fetch(item, auth_for(server)))
    await asyncio.sleep(0.05)
    leaving.cancel()
    got = await staying
    assert got.sha256 == r.sha256 and len(server.requests) == 1


async def test_materialize_links_into_the_folder_and_refuses_escapes(
    server: FileServer, downloader: Downloader, tmp_path: Path
):
    r = serve_content(server, "fw.bin", Resource(payload(1000)))
    cached = await downloader.fetch(content_item("fw.bin"), auth_for(server))
    work = tmp_path / "work"
    work.mkdir()
    placed = materialize(cached, work, "fw.bin")
    assert placed == work.resolve() / "fw.bin" and placed.read_bytes() == r.body
    assert placed.stat().st_ino == cached.path.stat().st_ino
    copied = materialize(cached, work, "copy.bin", copy=True)
    assert copied.read_bytes() == r.body and copied.stat().st_ino != cached.path.stat().st_ino
    for bad in ["../evil", "/etc/passwd", "..", "a/b", "", "fw.bin"]:
        with pytest.raises(DownloadError):
            materialize(cached, work, bad)
    assert sorted(p.name for p in work.iterdir()) == ["copy.bin", "fw.bin"]


# ----- disk errors --------------------------------------------------------------------------------


async def test_disk_full_is_a_clear_error_and_leaves_nothing_corrupt(
    server: FileServer, client: httpx.AsyncClient, store: Store, tmp_path: Path
):
    budget = 1_500_000

    def full_disk(fd: int, buffers: Sequence[bytes | memoryview]) -> int:
        """``os.writev`` on a disk with ``budget`` bytes free: short write, then ENOSPC."""
        nonlocal budget
        if budget <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        room, keep = budget, []
        for b in buffers:
            if room <= 0:
                break
            keep.append(memoryview(b)[:room])
            room -= len(keep[-1])
        n = os.writev(fd, keep)
        budget -= n
        return n

    serve_content(server, "fw.bin", Resource(payload(4 * MiB)))
    async with make_downloader(client, store, tmp_path, writev=full_disk) as d:
        with pytest.raises(DownloadError) as err:
            await d.fetch(content_item("fw.bin"), auth_for(server))
        message = str(err.value)
        assert message.startswith("disk full while writing ") and "bytes free" in message
        assert list((d.cache_dir / "partial").iterdir()) == []
        assert list((d.cache_dir / "sha256").iterdir()) == []
    assert store.transfers() == []


FSIZE_LIMITED = """
import asyncio, resource, signal, sys
from pathlib import Path
import httpx
from otatui.otau import parse_payload_item
from otatui.store import Store
from otatui.transfer import ContentAuth, Downloader, DownloadError

base, token, cache, db = sys.argv[1:5]
store = Store.open(db)  # created before the limit
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

async def main() -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        async with Downloader(client, store, Path(cache)) as d:
            try:
                await d.fetch(parse_payload_item("fw.bin"), ContentAuth(base, token))
            except DownloadError as exc:
                print(exc)

asyncio.run(main())
"""


def test_file_size_limit_from_the_kernel_is_a_clear_error(server: FileServer, tmp_path: Path):
    """A real write error from the OS (RLIMIT_FSIZE → EFBIG) through the real write path."""
    serve_content(server, "fw.bin", Resource(payload(3 * MiB)))
    db, cache = tmp_path / "otatui.db", tmp_path / "cache"
    Store.open(db).close()
    out = subprocess.run(
        [sys.executable, "-c", FSIZE_LIMITED, server.base_url, TOKEN, str(cache), str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.startswith("file size limit reached while writing "), out.stderr
    assert list((cache / "partial").iterdir()) == []
    store = Store.open(db)
    try:
        assert store.transfers() == []
    finally:
        store.close()


# ----- against the local connector ---------------------------------------------------------------


@pytest.fixture
async def connector() -> AsyncIterator[Connector]:
    async with Connector(devices=[("dev1", TOKEN)]) as c:
        yield c


async def test_connector_content_download_with_drops_and_resume(
    connector: Connector, downloader: Downloader
):
    body = payload(3 * MiB)
    connector.add_content("fw 2.1.0.bin", body)
    connector.faults.drop_download_after(500_000, count=3)
    sha = hashlib.sha256(body).hexdigest()
    got = await downloader.fetch(content_item("fw 2.1.0.bin", sha), auth_for(connector))
    assert got.path.read_bytes() == body


async def test_connector_content_wrong_token_and_missing_id(
    connector: Connector, downloader: Downloader
):
    connector.add_content("fw.bin", b"abc")
    with pytest.raises(DownloadError, match="401"):
        await downloader.fetch(content_item("fw.bin"), ContentAuth(connector.http_url, "bad"))
    with pytest.raises(DownloadError, match="not found"):
        await downloader.fetch(content_item("nope.bin"), auth_for(connector))


async def test_connector_content_restart_resumes(
    connector: Connector, client: httpx.AsyncClient, store: Store, tmp_path: Path
):
    body = payload(2 * MiB)
    connector.add_content("fw.bin", body)
    connector.faults.drop_download_after(700_000, count=1)
    # The first run waits long before retrying the dropped connection: stop it there.
    async with make_downloader(client, store, tmp_path, backoff_s=30, max_backoff_s=30) as first:
        seen = 0

        async def watch() -> None:
            nonlocal seen
            async for p in first.download(content_item("fw.bin"), auth_for(connector)):
                seen = p.done

        task = asyncio.create_task(watch())
        await eventually(lambda: seen >= 700_000, 20, every=0.002)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    (state,) = store.transfers()
    assert state.bytes_done == 700_000
    async with make_downloader(client, store, tmp_path) as second:
        got = await second.fetch(content_item("fw.bin"), auth_for(connector))
    assert got.path.read_bytes() == body


# ----- https: the raw transport with the client's TLS context, or the client itself -----------


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def tls_connector(cert: tuple[Path, Path]) -> AsyncIterator[Connector]:
    async with Connector(
        devices=[("dev1", TOKEN)], https_port=0, tls_cert=cert[0], tls_key=cert[1]
    ) as c:
        yield c


@pytest.mark.parametrize("raw_tls", [True, False])
async def test_https_download_with_a_private_ca_over_both_transports(
    tls_connector: Connector, cert: tuple[Path, Path], store: Store, tmp_path: Path, raw_tls: bool
):
    body = payload(5 * MiB + 3)
    tls_connector.add_content("fw.bin", body)
    tls_connector.faults.drop_download_after(1_000_000, count=1)
    context = ssl.create_default_context(cafile=str(cert[0]))
    async with (
        httpx.AsyncClient(timeout=10, verify=context) as client,
        make_downloader(client, store, tmp_path, ssl_context=context if raw_tls else None) as d,
    ):
        got = await d.fetch(
            content_item("fw.bin", hashlib.sha256(body).hexdigest()),
            ContentAuth(tls_connector.https_url, TOKEN),
        )
    assert got.path.read_bytes() == body


async def test_raw_https_checks_the_certificate(
    tls_connector: Connector, store: Store, tmp_path: Path
):
    tls_connector.add_content("fw.bin", b"abc")
    system_trust = ssl.create_default_context()  # does not know the private CA
    async with (
        httpx.AsyncClient(timeout=10) as client,
        make_downloader(client, store, tmp_path, ssl_context=system_trust, retries=0) as d,
    ):
        with pytest.raises(DownloadError, match=r"cannot connect.*(certificate|verify)") as err:
            await d.fetch(content_item("fw.bin"), ContentAuth(tls_connector.https_url, TOKEN))
    assert TOKEN not in str(err.value)
