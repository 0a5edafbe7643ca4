"""Resumable, verified downloads of payload items into the content-addressed cache.

Usage::

    downloader = Downloader(client, store, cache_dir)        # one per process, shared client
    async with contextlib.aclosing(downloader.download(item, ContentAuth(url, token))) as it:
        async for p in it:                                    # Progress(done, total, rate)
            ...
    cached = p.result                                         # the last Progress carries it
    # or simply: cached = await downloader.fetch(item, auth)

Behaviour, in short:

- **Cache first.** A pinned item (``#sha256=``) whose digest is in the cache costs no request at
  all. An unpinned item found in the index (same connector + content id, or same URL) is reused
  for ``reuse_unpinned_s`` seconds after it was fetched (default 5 minutes: a fleet offered one
  manifest shares one download); older, it is downloaded again, because without a pin a
  connector may hold different bytes under the same id (identical bytes dedupe in the cache).
- **Single flight.** Concurrent requests for the same source share one download; the download
  is cancelled (state kept for a resume) only when its last watcher goes away.
- **Resume.** The partial file and its state (validator, total, bytes) survive in the cache dir
  and the store. A dropped connection or a restart of otatui re-hashes the bytes on disk and
  asks for the rest with ``Range`` (+ ``If-Range`` with a strong ETag or Last-Modified). A 206 or
  a 200 + ``Content-Range`` continues; a 200 without it, a different validator or total, or a
  different start restarts from zero. Retries: at most ``retries`` attempts in a row without
  new bytes, with exponential backoff and jitter; then one honest :class:`DownloadError`.
- **Verify.** Size against ``Content-Length``/``Content-Range``; digest against the pin. A
  mismatch deletes the partial file: a corrupt file never reaches an installer.
- **Speed.** Bodies from ``http`` URLs (and ``https`` ones when ``ssl_context`` is given) are
  read from a plain blocking socket by worker threads (:mod:`otatui.transfer.raw_response`,
  :mod:`otatui.transfer.pump`): receiving, writing (``O_DIRECT`` where possible) and hashing
  run in parallel, and the event loop only samples progress. Other URLs (https without the
  context, proxies from the environment) go through the shared httpx client.
- **Disk.** A write error (disk full, file size limit, I/O) deletes the partial file and its
  state: space goes back to the rest of the system (the store must still be able to record the
  ``DOWNLOAD_ERROR``), and nothing half-written is left to be trusted later.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import ssl
import time
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from otatui.otau.payload import PayloadItem
from otatui.store import CacheEntry, Store
from otatui.transfer.cache import ContentCache
from otatui.transfer.errors import DownloadError
from otatui.transfer.job import DownloadJob
from otatui.transfer.partial import WriteV
from otatui.transfer.progress import CachedFile, Progress
from otatui.transfer.raw_response import RawTransport
from otatui.transfer.source import ContentAuth, Source, resolve


class Downloader:
    """Downloads for every device of one process: one cache, one store, one shared client."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        store: Store,
        cache_dir: Path,
        *,
        concurrency: int = 4,
        retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 15.0,
        reuse_unpinned_s: float = 300.0,
        progress_interval_s: float = 0.1,
        writev: WriteV = os.writev,
        raw: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        direct_io: bool = True,
    ) -> None:
        """``raw``: use the raw transport where it serves (see the module doc); ``ssl_context``:
        the shared client's TLS settings, for raw https downloads; ``direct_io``: allow
        ``O_DIRECT`` writes on the raw transport."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._client = client
        self._store = store
        self._cache = ContentCache(cache_dir)
        self._slots = asyncio.Semaphore(concurrency)
        # One worker thread per active download at most (plus, while a raw body is pumped, its
        # writer and hasher): threads never grow with devices.
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="otatui-download")
        self._raw = RawTransport.like(client, ssl_context) if raw else None
        self._direct_io = direct_io
        self._flights: dict[str, _Flight] = {}
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.reuse_unpinned_s = reuse_unpinned_s
        self.progress_interval_s = progress_interval_s
        self._writev = writev

    @property
    def cache_dir(self) -> Path:
        return self._cache.root

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel running downloads (their state is kept) and stop the worker threads."""
        tasks = [flight.task for flight in self._flights.values() if flight.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        await asyncio.to_thread(self._executor.shutdown, True)

    def cached(self, item: PayloadItem, auth: ContentAuth | None = None) -> CachedFile | None:
        """The cached file for ``item`` if it can be used without any request, else ``None``."""
        return self._lookup(resolve(item, auth), item)

    async def fetch(self, item: PayloadItem, auth: ContentAuth | None = None) -> CachedFile:
        """Download ``item`` (or find it in the cache) and return the verified file."""
        async with contextlib.aclosing(self.download(item, auth)) as progress:
            async for p in progress:
                if p.result is not None:
                    return p.result
        raise DownloadError(f"{item.filename}: the download ended without a result")

    async def download(
        self, item: PayloadItem, auth: ContentAuth | None = None
    ) -> AsyncGenerator[Progress, None]:
        """Progress of the download of ``item``; the last one carries ``result``.

        Raises :class:`DownloadError`. Consume it inside ``contextlib.aclosing`` (or to the end)
        so that leaving early releases the shared download at once.
        """
        source = resolve(item, auth)
        hit = self._lookup(source, item)
        if hit is not None:
            yield Progress(hit.size, hit.size, 0.0, result=hit)
            return
        flight = self._flights.get(source.key)
        if flight is None:
            flight = _Flight()
            self._flights[source.key] = flight
            job = DownloadJob(
                client=self._client,
                store=self._store,
                cache=self._cache,
                executor=self._executor,
                writev=self._writev,
                tuning=self,
                publish=flight.publish,
                source=source,
                item=item,
                raw=self._raw,
                direct_io=self._direct_io,
            )
            flight.task = asyncio.create_task(self._run(job), name=f"download {item.filename}")
            flight.task.add_done_callback(functools.partial(self._landed, source.key, flight))
        task = flight.task
        assert task is not None
        flight.watchers += 1
        try:
            shown: Progress | None = None
            while not task.done():
                changed = flight.changed
                if flight.latest is not shown:
                    shown = flight.latest
                    yield shown
                    continue
                await changed.wait()
            if task.cancelled():
                raise DownloadError(f"{source.label}: download cancelled")
            cached = task.result()
            latest = flight.latest
            yield Progress(
                cached.size,
                cached.size,
                latest.rate_bytes_per_s,
                result=cached,
                resumed=latest.resumed,
                resumed_at=latest.resumed_at,
            )
        finally:
            flight.watchers -= 1
            if flight.watchers == 0 and not task.done():
                if self._flights.get(source.key) is flight:
                    del self._flights[source.key]
                task.cancel()
                await asyncio.wait([task])  # it saves its state for a later resume

    # -- internals ----------------------------------------------------------------------------

    async def _run(self, job: DownloadJob) -> CachedFile:
        async with self._slots:
            return await job.run()

    def _landed(self, key: str, flight: _Flight, _task: object) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        task = flight.task
        if task is not None and not task.cancelled():
            task.exception()  # retrieved here too: watchers may all have gone
        flight.publish(flight.latest)

    def _lookup(self, source: Source, item: PayloadItem) -> CachedFile | None:
        if item.sha256 is not None:
            hit = self._cache.blob(item.sha256)
            if hit is not None:
                entry = self._store.get_cache(source.key)
                if entry is None or entry.sha256 != hit.sha256:
                    self._index(source.key, hit)
            return hit
        entry = self._store.get_cache(source.key)
        if entry is None or time.time() - entry.fetched_at > self.reuse_unpinned_s:
            return None
        return self._cache.blob(entry.sha256, entry.size)

    def _index(self, key: str, cached: CachedFile) -> None:
        self._store.put_cache(
            CacheEntry(key, cached.sha256, cached.size, str(cached.path), time.time())
        )


class _Flight:
    """One running download and the latest progress its watchers have to see."""

    def __init__(self) -> None:
        self.latest = Progress(0, None, 0.0)
        self.changed = asyncio.Event()
        self.watchers = 0
        self.task: asyncio.Task[CachedFile] | None = None

    def publish(self, progress: Progress) -> None:
        self.latest = progress
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()
