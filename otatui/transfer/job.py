"""One download's work: state from the store, attempts with resume, verification, commit.

:class:`Downloader` runs one :class:`DownloadJob` per source at a time (single flight) and
owns what jobs share: the HTTP client, the store, the cache and the worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import random
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import NoReturn, Protocol

import httpx

from otatui.otau.payload import PayloadItem
from otatui.store import CacheEntry, Store, StoreError, TransferState
from otatui.transfer.answer import (
    content_length,
    describe_transport_error,
    parse_content_range,
    refusal,
    unsatisfied_range,
    validator_of,
)
from otatui.transfer.cache import ContentCache
from otatui.transfer.errors import DownloadError
from otatui.transfer.partial import PartialFile, WriteV
from otatui.transfer.progress import CachedFile, Progress, RateMeter
from otatui.transfer.raw_response import RawResponse, RawTransport
from otatui.transfer.source import MAX_REDIRECTS, REDIRECT_STATUSES, Source

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RESTARTS = 3
MAX_ATTEMPTS = 200
SAVE_INTERVAL_S = 2.0


class Tuning(Protocol):
    """The knobs a job reads (live) from its downloader."""

    retries: int
    backoff_s: float
    max_backoff_s: float
    progress_interval_s: float


def backoff_delay(tuning: Tuning, failures: int) -> float:
    """Exponential backoff, capped, with jitter: ``backoff_s * 2**(failures-1)`` times 0.5-1."""
    delay = min(tuning.max_backoff_s, tuning.backoff_s * (2.0 ** max(0, failures - 1)))
    return delay * random.uniform(0.5, 1.0)


class Retry(Exception):
    """This attempt failed in a way worth another try (connection lost, 5xx...)."""


class DownloadJob:
    """The work of one flight: state, partial file, attempts, verification, commit."""

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        store: Store,
        cache: ContentCache,
        executor: Executor,
        writev: WriteV,
        tuning: Tuning,
        publish: Callable[[Progress], None],
        source: Source,
        item: PayloadItem,
        raw: RawTransport | None = None,
        direct_io: bool = True,
    ) -> None:
        self.client = client
        self.executor = executor
        self.raw = raw
        self.store = store
        self.cache = cache
        self.tuning = tuning
        self.publish = publish
        self.source = source
        self.item = item
        self.partial = PartialFile(
            cache.partial_path(source.key), executor, writev=writev, direct_io=direct_io
        )
        self.validator: str | None = None
        self.total: int | None = None
        self.opened = False
        self.finished = False
        self.discard = False
        self.resumed = 0
        """Times the transfer continued with Range after a cut (see :class:`Progress`)."""
        self.resumed_at: int | None = None
        self.after_cut = True  # a partial file from an earlier run was cut too
        now = time.monotonic()
        self.meter = RateMeter(now, 0)
        self.next_tick = now
        self.last_save = now

    @property
    def label(self) -> str:
        return self.source.label

    async def run(self) -> CachedFile:
        try:
            resume = self._load_state()
            self.cache.ensure()
            await self.partial.open(resume=resume)
            self.opened = True
            if self.total is not None and self.partial.accepted > self.total:
                await self._restart()
            self.meter.rebase(time.monotonic(), self.partial.accepted)
            self._publish()
            if self.total is None or self.partial.accepted < self.total:
                self._save()
                await self._transfer()
            digest = await self.partial.finish()
            return self._commit(digest)
        except OSError as exc:
            self._disk_error(exc)
        except StoreError as exc:
            raise DownloadError(
                f"{self.label}: cannot record the download's state: {exc}"
            ) from None
        finally:
            await self.partial.close()
            if self.opened and not self.finished:
                if self.discard:
                    self.cache.discard(self.partial.path)
                    with contextlib.suppress(StoreError):
                        self.store.delete_transfer(self.source.key)
                else:
                    with contextlib.suppress(StoreError):
                        self._save()

    # -- state ----------------------------------------------------------------------------------

    def _load_state(self) -> bool:
        state = self.store.get_transfer(self.source.key)
        if state is None:
            return False
        if Path(state.partial_path) != self.partial.path:
            self.cache.discard(Path(state.partial_path))
            return False
        if state.sha256 is not None and self.item.sha256 not in (None, state.sha256):
            return False  # another file is expected now: start over
        self.validator, self.total = state.validator, state.total
        return True

    def _save(self) -> None:
        self.store.put_transfer(
            TransferState(
                key=self.source.key,
                partial_path=str(self.partial.path),
                bytes_done=self.partial.written,
                total=self.total,
                validator=self.validator,
                sha256=self.item.sha256,
                updated_at=time.time(),
            )
        )
        self.last_save = time.monotonic()

    def _tick(self) -> None:
        if time.monotonic() >= self.next_tick:
            self._publish()

    def _publish(self) -> None:
        now = time.monotonic()
        rate = self.meter.sample(now, self.partial.accepted)
        self.publish(
            Progress(
                self.partial.accepted,
                self.total,
                rate,
                resumed=self.resumed,
                resumed_at=self.resumed_at,
            )
        )
        self.next_tick = now + self.tuning.progress_interval_s
        if now - self.last_save >= SAVE_INTERVAL_S:
            self._save()

    async def _restart(self) -> None:
        await self.partial.restart()
        self.validator = None
        self.total = None
        self.meter.rebase(time.monotonic(), 0)

    # -- network --------------------------------------------------------------------------------

    async def _transfer(self) -> None:
        attempts = 0
        restarts = 0
        failures = 0
        while True:
            attempts += 1
            before = self.partial.accepted
            try:
                outcome = await self._attempt()
            except Retry as exc:
                reason = str(exc)
            except httpx.TimeoutException:
                reason = "the server stopped answering (timeout)"
            except httpx.TransportError as exc:
                reason = describe_transport_error(exc)
            else:
                if outcome == "done":
                    return
                self.after_cut = False  # "more" and "restart": the server ended the body itself
                if outcome == "restart":
                    restarts += 1
                    if restarts > MAX_RESTARTS:
                        self._fail(
                            f"{self.label} changed on the server {restarts} times while downloading"
                        )
                continue  # "more": a short 206 ended cleanly, ask for the rest at once
            self.after_cut = True
            self._save()
            self._publish()
            failures = 0 if self.partial.accepted > before else failures + 1
            if failures > self.tuning.retries or attempts >= MAX_ATTEMPTS:
                self._fail(f"download of {self.label} failed after {attempts} attempts: {reason}")
            await asyncio.sleep(backoff_delay(self.tuning, max(failures, 1)))

    async def _attempt(self) -> str:
        offset = self.partial.accepted
        extra: dict[str, str] = {}
        if offset > 0:
            extra["Range"] = f"bytes={offset}-"
            if self.validator is not None and not self.validator.startswith("W/"):
                extra["If-Range"] = self.validator
        response = await self._open(extra)
        try:
            return await self._receive(response, offset)
        finally:
            await _close(response)

    async def _open(self, extra: dict[str, str]) -> httpx.Response | RawResponse:
        url = httpx.URL(self.source.url)
        for _ in range(MAX_REDIRECTS + 1):
            headers = {**self.source.headers(url), **extra}
            response: httpx.Response | RawResponse
            if self.raw is not None and self.raw.serves(url):
                response = await self._open_raw(self.raw, url, headers)
            else:
                request = httpx.Request("GET", url, headers=headers)
                response = await self.client.send(
                    request, stream=True, auth=None, follow_redirects=False
                )
            location = response.headers.get("location")
            if response.status_code not in REDIRECT_STATUSES or location is None:
                return response
            await _close(response)
            url = self.source.next_hop(url, location)
        self._fail(f"{self.label}: more than {MAX_REDIRECTS} redirects")

    async def _open_raw(
        self, raw: RawTransport, url: httpx.URL, headers: dict[str, str]
    ) -> RawResponse:
        """Connect and read the head on a worker thread; a late answer after a cancel is closed."""
        future = self.executor.submit(raw.open, url, headers)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.add_done_callback(_close_late)
            raise

    async def _receive(self, response: httpx.Response | RawResponse, offset: int) -> str:
        status = response.status_code
        headers = response.headers
        content_range = headers.get("content-range")
        if status == 206 or (status == 200 and offset > 0 and content_range is not None):
            parsed = parse_content_range(content_range)
            seen = validator_of(headers)
            changed = (
                parsed is None
                or parsed[0] != offset
                or (self.total is not None and parsed[2] not in (None, self.total))
                or (self.validator is not None and seen is not None and seen != self.validator)
            )
            if changed or parsed is None:
                await self._restart()
                self._save()
                return "restart"
            if parsed[2] is not None:
                self.total = parsed[2]
            if self.validator is None:
                self.validator = seen
            if offset > 0 and self.after_cut:
                self.resumed += 1
                self.resumed_at = offset
                self.after_cut = False
            expected: int | None = parsed[1] + 1
        elif status == 200:
            if offset > 0:  # Range ignored, or If-Range said the file changed
                await self._restart()
            self.validator = validator_of(headers)
            self.total = content_length(headers)
            expected = self.total
        elif status == 416 and offset > 0:
            unsatisfied = unsatisfied_range(headers.get("content-range"))
            if unsatisfied == offset:
                self.total = offset  # everything is already here
                return "done"
            await self._restart()
            self._save()
            return "restart"
        elif status in RETRY_STATUSES or status >= 500:
            raise Retry(f"HTTP {status}")
        else:
            self._fail(refusal(self.label, status), discard=status in (404, 410))
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            self._fail(f"{self.label}: the server sent it compressed ({encoding[:20]})")
        self._save()
        self._publish()
        if isinstance(response, RawResponse):
            await self.partial.receive(response, self._tick, self.tuning.progress_interval_s)
        else:
            async for chunk in response.aiter_raw():
                await self.partial.write(chunk)
                self._tick()
            await self.partial.flush()
        self._publish()
        got = self.partial.accepted
        if expected is not None and got < expected:
            raise Retry(f"connection closed after {got} of {expected} bytes")
        if expected is not None and got > expected:
            self._fail(f"{self.label}: the server sent more bytes than announced", discard=True)
        if self.total is not None and got < self.total:
            return "more"
        return "done"

    # -- the end --------------------------------------------------------------------------------

    def _commit(self, digest: str) -> CachedFile:
        size = self.partial.written
        if self.total is not None and size != self.total:
            self._fail(f"{self.label}: got {size} bytes, expected {self.total}", discard=True)
        pin = self.item.sha256
        if pin is not None and digest != pin:
            self._fail(
                f"sha256 mismatch for {self.label}: expected {pin[:12]}…, got {digest[:12]}…;"
                " file discarded",
                discard=True,
            )
        cached = self.cache.commit(self.partial.path, digest, size)
        self.finished = True
        self.store.put_cache(
            CacheEntry(self.source.key, cached.sha256, cached.size, str(cached.path), time.time())
        )
        self.store.delete_transfer(self.source.key)
        return cached

    def _fail(self, message: str, *, discard: bool = False) -> NoReturn:
        self.discard = self.discard or discard
        raise DownloadError(message)

    def _disk_error(self, exc: OSError) -> NoReturn:
        where = self.partial.path
        self.discard = True
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            try:
                free = f"{shutil.disk_usage(where.parent).free} bytes free"
            except OSError:
                free = "free space unknown"
            self._fail(f"disk full while writing {where} ({free}) for {self.label}")
        if exc.errno == errno.EFBIG:
            self._fail(f"file size limit reached while writing {where} for {self.label}")
        self._fail(f"cannot write {where} for {self.label}: {exc.strerror or exc}")


async def _close(response: httpx.Response | RawResponse) -> None:
    if isinstance(response, RawResponse):
        response.close()
    else:
        await response.aclose()


def _close_late(future: Future[RawResponse]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().close()
