"""The HTTP device channel: long polling, resource writes and timestamped records over httpx.

One `httpx.AsyncClient` serves every device (one connection pool); the caller owns it (see
`device_api_client`). The device token goes into each request's ``X-Exosite-CIK`` header, never
into the client's defaults, so requests of different devices cannot mix credentials.

Watching: each watched alias gets its own long poll (``GET /onep:v1/stack/alias?<alias>``): the
API documentation allows one alias per long poll while Exosite's own client asks for several
(murano-device-api.md §2.1, UNCERTAIN); `combine_watch=True` puts them all in one request.

- ``Request-Timeout`` tells the connector how long to hold the poll; the client's read timeout is
  `read_margin_s` longer. ``If-Modified-Since`` starts at ``0`` (deliver any value still waiting
  for its acknowledgement) and then echoes the last ``Last-Modified`` verbatim (Unix seconds or
  HTTP-date, both are understood).
- CONNECTED as soon as the connector answers a poll or has held one for `held_after_s`.
- 304/204: poll again at once (after a short pause if the connector did not hold the poll).
- 200: each ``alias=value`` pair becomes a `ResourceValue` (raw text exactly as sent, the
  ``Last-Modified`` time as timestamp). The same value with the same ``Last-Modified`` delivered
  again (e.g. before our acknowledgement landed) is not yielded twice, and the next poll waits
  `repoll_delay_s` so that the re-delivery does not become a busy loop. Only if it still comes
  back to a poll sent after our acknowledgement of it was confirmed is it yielded again: the
  application set the same value once more within the same second (``Last-Modified`` has
  one-second resolution), and swallowing it would leave it unacknowledged for ever.
- 401: `AuthError`, state AUTH_FAILED, all polling of this channel stops; writes fail at once.
- 404 (alias not defined), other statuses, network errors and timeouts: state BACKOFF with the
  reason and the time of the next attempt, exponential backoff with full jitter (1 s .. 60 s by
  default); CONNECTED again after the next answered poll.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Final

import httpx

from otatui.murano.backoff import Backoff
from otatui.murano.channel import (
    AuthError,
    ChannelError,
    ChannelState,
    LinkState,
    NotConnected,
    RecordConflict,
    ResourceValue,
    StateCallback,
    TimedValue,
)
from otatui.murano.device_api import (
    ALIAS_PATH,
    RECORD_PATH,
    TOKEN_HEADER,
    describe_transport_error,
    device_api_client,
)
from otatui.murano.form import FORM_CONTENT_TYPE, FormError, alias_query, decode_form, encode_form
from otatui.murano.long_poll import END, PollMemory, ValueStream
from otatui.murano.record import encode_record, parse_conflicts, split_for_record

__all__ = ["DEFAULT_REQUEST_TIMEOUT_MS", "HttpChannel", "device_api_client"]

log = logging.getLogger(__name__)

DEFAULT_REQUEST_TIMEOUT_MS: Final = 300_000


class HttpChannel:
    """One device's HTTP long-poll channel (implements `otatui.murano.channel.Channel`).

    `token` may be None when the client authenticates with a TLS client certificate.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        token: str | None,
        *,
        watch: Sequence[str] = ("config_otau",),
        on_state: StateCallback | None = None,
        request_timeout_ms: int = DEFAULT_REQUEST_TIMEOUT_MS,
        backoff: Backoff | None = None,
        combine_watch: bool = False,
        read_margin_s: float = 15.0,
        connect_timeout_s: float = 15.0,
        write_timeout_s: float = 30.0,
        repoll_delay_s: float = 1.0,
        held_after_s: float = 1.0,
        initial_since: str | None = "0",
    ) -> None:
        if request_timeout_ms <= 0:
            raise ValueError("request_timeout_ms must be positive")
        self._client = client
        self._base = base_url.rstrip("/")
        self._token = token
        self._watch = tuple(watch)
        self._on_state = on_state
        self._request_timeout_ms = int(request_timeout_ms)
        self._backoff = backoff or Backoff()
        self._combine = combine_watch
        self._initial_since = initial_since
        self._repoll_delay_s = repoll_delay_s
        self._held_after_s = held_after_s
        poll_read = request_timeout_ms / 1000 + read_margin_s
        self._poll_timeout = httpx.Timeout(
            connect=connect_timeout_s, read=poll_read, write=write_timeout_s, pool=None
        )
        self._call_timeout = httpx.Timeout(write_timeout_s, connect=connect_timeout_s)
        self._state = ChannelState(LinkState.STOPPED)
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._closed = False
        self._auth_error: AuthError | None = None
        self._acked: dict[str, tuple[str, float | None, float]] = {}

    def __repr__(self) -> str:
        return f"HttpChannel({self._base!r}, watch={self._watch!r}, state={self._state.state})"

    # -- Channel protocol ------------------------------------------------------------------

    @property
    def protocol(self) -> str:
        return "http"

    @property
    def state(self) -> ChannelState:
        return self._state

    @property
    def watched(self) -> tuple[str, ...]:
        return self._watch

    async def start(self) -> None:
        if self._started or self._closed:
            return
        self._started = True
        self._set_state(ChannelState(LinkState.CONNECTING))
        groups = [self._watch] if self._combine else [(a,) for a in self._watch]
        for aliases in groups:
            if not aliases:
                continue
            poll = PollMemory(aliases, self._backoff.fresh(), self._initial_since)
            task = asyncio.create_task(self._poll_loop(poll), name=f"http-poll {poll.label}")
            self._tasks.append(task)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._cancel_polls()
        if self._state.state != LinkState.AUTH_FAILED:
            self._set_state(ChannelState(LinkState.STOPPED, "closed"))
        self._queue.put_nowait(END)

    def values(self) -> AsyncIterator[ResourceValue]:
        """Values as they arrive; ends after `close()`, raises `AuthError` after a 401.

        Cancelling a pending ``anext()`` (e.g. `asyncio.wait_for` timing out) loses nothing and
        leaves the iterator usable.
        """
        return ValueStream(self._queue)

    async def write(self, alias: str, value: str) -> None:
        await self._post_alias([(alias, value)], what=f"write of {alias}")

    async def acknowledge(self, value: ResourceValue) -> None:
        await self._post_alias([(value.alias, value.raw)], what=f"acknowledgement of {value.alias}")
        loop_time = asyncio.get_running_loop().time()
        self._acked[value.alias] = (value.raw, value.timestamp, loop_time)

    async def write_batch(self, records: Sequence[TimedValue]) -> None:
        """All `records` with their own times, in order, as few record requests as allowed.

        The batch is cut with `split_for_record`; the groups are sent one after the other and
        this returns once all were confirmed. If one fails, the earlier groups are stored
        already: sending them again stores the same values at the same seconds.
        """
        for group in split_for_record(records):
            resp = await self._send(
                "POST",
                RECORD_PATH,
                what="record batch",
                content=encode_record(group),
                headers={"Content-Type": FORM_CONTENT_TYPE},
            )
            if resp.status_code in (200, 204):
                continue
            if resp.status_code == 409:
                raise RecordConflict(parse_conflicts(resp.text))
            raise ChannelError(f"record batch refused: HTTP {resp.status_code}")

    # -- read-only access (monitors) ---------------------------------------------------------

    async def read(self, aliases: Sequence[str]) -> dict[str, str]:
        """The current values of `aliases` (missing or empty ones are absent)."""
        resp = await self._send(
            "GET",
            f"{ALIAS_PATH}?{alias_query(aliases)}",
            what="read",
            headers={"Accept": FORM_CONTENT_TYPE},
        )
        if resp.status_code == 204:
            return {}
        if resp.status_code != 200:
            raise ChannelError(f"read of {', '.join(aliases)} refused: HTTP {resp.status_code}")
        try:
            return dict(decode_form(resp.content.decode("utf-8")))
        except (UnicodeDecodeError, FormError):
            raise ChannelError("read answer is not a readable form body") from None

    # -- internals -------------------------------------------------------------------------

    async def _post_alias(self, pairs: list[tuple[str, str]], *, what: str) -> None:
        resp = await self._send(
            "POST",
            ALIAS_PATH,
            what=what,
            content=encode_form(pairs),
            headers={"Content-Type": FORM_CONTENT_TYPE},
        )
        if resp.status_code not in (200, 204):
            raise ChannelError(f"{what} refused: HTTP {resp.status_code}")

    async def _send(
        self, method: str, path: str, *, what: str, headers: dict[str, str], content: str = ""
    ) -> httpx.Response:
        if self._auth_error is not None:
            raise self._auth_error
        if self._closed:
            raise NotConnected(f"{what}: the channel is closed")
        try:
            resp = await self._client.request(
                method,
                self._base + path,
                content=content.encode("ascii") if content else None,
                headers=self._headers(headers),
                timeout=self._call_timeout,
            )
        except httpx.TransportError as exc:
            reason = describe_transport_error(exc, self._token)
            raise NotConnected(f"{what}: cannot reach the connector ({reason})") from None
        if resp.status_code == 401:
            raise await self._auth_failed()
        if self._state.state == LinkState.CONNECTING and not self._tasks:
            self._set_state(ChannelState(LinkState.CONNECTED))
        return resp

    def _headers(self, extra: dict[str, str]) -> dict[str, str]:
        headers = dict(extra)
        if self._token is not None:
            headers[TOKEN_HEADER] = self._token
        return headers

    async def _poll_loop(self, poll: PollMemory) -> None:
        url = f"{self._base}{ALIAS_PATH}?{alias_query(poll.aliases)}"
        while not self._closed:
            try:
                if not await self._poll_once(poll, url):
                    return
            except Exception as exc:  # a bug must not silently end the device's polling
                log.exception("long poll of %s failed unexpectedly", poll.label)
                await self._fail(poll, f"long poll of {poll.label}: {type(exc).__name__}")

    async def _poll_once(self, poll: PollMemory, url: str) -> bool:
        """One long poll and what its answer calls for; False once polling must stop."""
        request_timeout_s = self._request_timeout_ms / 1000
        loop = asyncio.get_running_loop()
        headers = self._headers(
            {"Accept": FORM_CONTENT_TYPE, "Request-Timeout": str(self._request_timeout_ms)}
        )
        if poll.since is not None:
            headers["If-Modified-Since"] = poll.since
        started = loop.time()
        request = asyncio.ensure_future(
            self._client.get(url, headers=headers, timeout=self._poll_timeout)
        )
        try:
            await asyncio.wait({request}, timeout=self._held_after_s)
            if not request.done():
                # The connector accepted the poll and holds it: that is a working connection,
                # no need to wait up to Request-Timeout before saying so.
                self._answered(poll)
            resp = await request
        except httpx.TransportError as exc:
            reason = describe_transport_error(exc, self._token)
            await self._fail(poll, f"long poll of {poll.label}: {reason}")
            return True
        finally:
            request.cancel()  # no-op once done; ends the request if we were cancelled
        status = resp.status_code
        if status == 401:
            await self._auth_failed()
            return False
        if status == 200:
            try:
                fresh = poll.take(resp, self._acked, started)
            except FormError as exc:
                await self._fail(poll, f"long poll of {poll.label}: {exc}")
                return True
            self._answered(poll)
            for value in fresh:
                self._queue.put_nowait(value)
            if not fresh:
                # A value we already have, sent again before our acknowledgement arrived.
                await asyncio.sleep(self._repoll_delay_s)
        elif status in (204, 304):
            self._answered(poll)
            if loop.time() - started < request_timeout_s / 2:
                # The connector did not hold the poll: don't turn that into a busy loop.
                await asyncio.sleep(min(self._repoll_delay_s, request_timeout_s))
        elif status == 404:
            await self._fail(poll, f"{poll.label} is not defined on the connector (HTTP 404)")
        else:
            await self._fail(poll, f"long poll of {poll.label}: HTTP {status}")
        return True

    def _answered(self, poll: PollMemory) -> None:
        poll.backoff.reset()
        if self._state.state != LinkState.CONNECTED and not self._closed:
            self._set_state(ChannelState(LinkState.CONNECTED))

    async def _fail(self, poll: PollMemory, reason: str) -> None:
        delay = poll.backoff.next_delay()
        self._set_state(
            ChannelState(
                LinkState.BACKOFF,
                reason=reason,
                retry_at=time.time() + delay,
                attempt=poll.backoff.attempt,
            )
        )
        await asyncio.sleep(delay)

    async def _auth_failed(self) -> AuthError:
        if self._auth_error is None:
            self._auth_error = AuthError("the connector refused the device token (HTTP 401)")
            self._set_state(ChannelState(LinkState.AUTH_FAILED, reason=str(self._auth_error)))
            self._queue.put_nowait(self._auth_error)
            await self._cancel_polls()
        return self._auth_error

    async def _cancel_polls(self) -> None:
        current = asyncio.current_task()
        others = [t for t in self._tasks if t is not current and not t.done()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def _set_state(self, state: ChannelState) -> None:
        self._state = state
        if self._on_state is None:
            return
        try:
            self._on_state(state)
        except Exception:
            log.exception("on_state callback failed")
