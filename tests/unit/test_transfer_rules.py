"""Pieces of otatui.transfer without sockets: the credential rule, redirects, Content-Range,
validators, backoff, the rate meter, the partial file (hash == bytes on disk), the cache."""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from disk_helpers import disk_with_room

from otatui.otau import parse_payload_item
from otatui.transfer import TOKEN_HEADER, CachedFile, ContentAuth, DownloadError, materialize
from otatui.transfer.answer import (
    content_length,
    parse_content_range,
    unsatisfied_range,
    validator_of,
)
from otatui.transfer.cache import ContentCache, filename_problem
from otatui.transfer.job import backoff_delay
from otatui.transfer.partial import PartialFile
from otatui.transfer.progress import RateMeter
from otatui.transfer.source import origin, resolve

TOKEN = "Zt9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK9y"
AUTH = ContentAuth("https://abc.m2.exosite.io/", TOKEN)


# ----- the credential rule ---------------------------------------------------------------------


def test_content_item_url_key_and_token_header():
    src = resolve(parse_payload_item("fw 1.0+é.bin"), AUTH)
    assert src.url == "https://abc.m2.exosite.io/provision/download?id=fw+1.0%2B%C3%A9.bin"
    assert src.key == "content https://abc.m2.exosite.io fw 1.0+é.bin"
    assert src.headers(httpx.URL(src.url))[TOKEN_HEADER] == TOKEN
    assert TOKEN not in repr(src) and TOKEN not in repr(AUTH) and TOKEN not in src.label


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.example.com/fw.bin",  # another host
        "http://abc.m2.exosite.io/fw.bin",  # same host, another scheme
        "https://abc.m2.exosite.io:8443/fw.bin",  # same host, another port
    ],
)
def test_token_only_on_the_connectors_own_origin(url: str):
    src = resolve(parse_payload_item("fw.bin"), AUTH)
    assert TOKEN_HEADER not in src.headers(httpx.URL(url))
    assert src.headers(httpx.URL("https://ABC.m2.exosite.io:443/x"))[TOKEN_HEADER] == TOKEN


def test_external_item_never_carries_the_token_even_with_auth():
    src = resolve(parse_payload_item("https://abc.m2.exosite.io/provision/x.bin"), AUTH)
    headers = src.headers(httpx.URL(src.url))
    assert headers == {"User-Agent": headers["User-Agent"], "Accept-Encoding": "identity"}
    assert src.token is None and src.token_origin is None


def test_external_key_hides_the_query_of_a_signed_url():
    src = resolve(parse_payload_item("https://s3.example.com/b/fw.bin?X-Sig=secret123"), None)
    assert "secret123" not in src.key and "secret123" not in src.label
    other = resolve(parse_payload_item("https://s3.example.com/b/fw.bin?X-Sig=other"), None)
    assert src.key != other.key and src.key.startswith("url https://s3.example.com/b/fw.bin?")


def test_content_item_without_auth_is_refused():
    with pytest.raises(DownloadError, match="needs the device's connector"):
        resolve(parse_payload_item("fw.bin"), None)


def test_content_auth_needs_an_http_base_url():
    with pytest.raises(ValueError, match="http"):
        ContentAuth("ftp://abc/", TOKEN)


def test_origin_fills_default_ports():
    assert origin("https://A.example/x") == ("https", "a.example", 443)
    assert origin("http://a.example:8080/") == ("http", "a.example", 8080)


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/other?id=1", "https://abc.m2.exosite.io/other?id=1"),
        ("https://cdn.example.com/a", "https://cdn.example.com/a"),
        ("//cdn.example.com/b", "https://cdn.example.com/b"),
    ],
)
def test_redirect_targets(location: str, expected: str):
    src = resolve(parse_payload_item("fw.bin"), AUTH)
    assert str(src.next_hop(httpx.URL(src.url), location)) == expected


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://abc.m2.exosite.io/x", "https to plain http"),
        ("file:///etc/passwd", "non-http"),
        ("javascript:alert(1)", "non-http"),
        ("https://user:pw@cdn.example.com/x", "credentials"),
    ],
)
def test_redirect_targets_refused(location: str, reason: str):
    src = resolve(parse_payload_item("fw.bin"), AUTH)
    with pytest.raises(DownloadError, match=reason) as err:
        src.next_hop(httpx.URL(src.url), location)
    assert "pw" not in str(err.value)


# ----- response headers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("bytes 100-199/1000", (100, 199, 1000)),
        ("bytes 0-0/*", (0, 0, None)),
        ("BYTES 5-9/10", (5, 9, 10)),
        ("bytes 5-4/10", None),  # ends before it starts
        ("bytes 5-10/10", None),  # past the end
        ("bytes */10", None),
        ("items 0-1/2", None),
        (None, None),
    ],
)
def test_content_range(value: str | None, parsed: tuple[int, int, int | None] | None):
    assert parse_content_range(value) == parsed


def test_validator_prefers_a_strong_etag():
    lm = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert validator_of(httpx.Headers({"etag": '"abc"', "last-modified": lm})) == '"abc"'
    assert validator_of(httpx.Headers({"etag": 'W/"abc"', "last-modified": lm})) == lm
    assert validator_of(httpx.Headers({})) is None


def test_content_length():
    assert content_length(httpx.Headers({"content-length": "12"})) == 12
    assert content_length(httpx.Headers({"content-length": "-1"})) is None
    assert content_length(httpx.Headers({})) is None


def test_unsatisfied_range_gives_the_total():
    assert unsatisfied_range("bytes */1234") == 1234
    assert unsatisfied_range(" BYTES */0 ") == 0
    assert unsatisfied_range("bytes 0-1/2") is None
    assert unsatisfied_range(None) is None


class _Tuning:
    retries = 5
    backoff_s = 0.5
    max_backoff_s = 4.0
    progress_interval_s = 0.1


@pytest.mark.parametrize(
    ("failures", "low", "high"), [(1, 0.25, 0.5), (3, 1.0, 2.0), (9, 2.0, 4.0)]
)
def test_backoff_grows_with_jitter_and_a_cap(failures: int, low: float, high: float):
    delays = [backoff_delay(_Tuning(), failures) for _ in range(200)]
    assert all(low <= d <= high for d in delays) and len(set(delays)) > 1


def test_rate_meter_smooths_and_rebases():
    meter = RateMeter(0.0, 0)
    assert meter.sample(1.0, 1000) == 1000.0
    assert meter.sample(2.0, 1000) == pytest.approx(700.0)  # 0.3 * 0 + 0.7 * 1000
    meter.rebase(3.0, 0)  # a restart from zero is not a negative rate
    assert meter.sample(4.0, 500) == pytest.approx(0.3 * 500 + 0.7 * 700)


# ----- partial file ----------------------------------------------------------------------------


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(1) as pool:
        yield pool


async def test_partial_file_hashes_what_it_writes_and_resumes(
    tmp_path: Path, executor: ThreadPoolExecutor
):
    data = os.urandom(3_000_000)
    path = tmp_path / "x.part"
    part = PartialFile(path, executor)
    await part.open(resume=False)
    for i in range(0, 1_000_000, 4096):
        await part.write(data[i : min(i + 4096, 1_000_000)])
    await part.close()  # what was accepted is written
    assert path.read_bytes() == data[:1_000_000]

    again = PartialFile(path, executor)
    assert await again.open(resume=True) == 1_000_000  # re-hashed from disk
    await again.write(data[1_000_000:])
    assert await again.finish() == hashlib.sha256(data).hexdigest()
    await again.close()
    assert path.read_bytes() == data


async def test_partial_file_restart_and_fresh_open_empty_it(
    tmp_path: Path, executor: ThreadPoolExecutor
):
    path = tmp_path / "x.part"
    path.write_bytes(b"stale bytes")
    part = PartialFile(path, executor)
    assert await part.open(resume=False) == 0
    await part.write(b"abc")
    await part.restart()
    await part.write(b"xyz")
    assert await part.finish() == hashlib.sha256(b"xyz").hexdigest()
    await part.close()
    assert path.read_bytes() == b"xyz"


async def test_short_writes_keep_hash_and_file_in_step(
    tmp_path: Path, executor: ThreadPoolExecutor
):
    def dribble(fd: int, buffers: Sequence[bytes | memoryview]) -> int:
        return os.write(fd, bytes(memoryview(buffers[0])[:777]))

    data = os.urandom(200_000)
    part = PartialFile(tmp_path / "x.part", executor, writev=dribble)
    await part.open(resume=False)
    for i in range(0, len(data), 10_000):
        await part.write(data[i : i + 10_000])
    assert await part.finish() == hashlib.sha256(data).hexdigest()
    await part.close()


async def test_disk_full_mid_batch_leaves_a_consistent_prefix(
    tmp_path: Path, executor: ThreadPoolExecutor
):
    small_disk = disk_with_room(1_234_567)
    data = os.urandom(3_000_000)
    path = tmp_path / "x.part"
    part = PartialFile(path, executor, writev=small_disk)
    await part.open(resume=False)
    with pytest.raises(OSError, match="No space"):
        for i in range(0, len(data), 65_536):
            await part.write(data[i : i + 65_536])
        await part.flush()
    await part.close()
    assert part.written == path.stat().st_size == 1_234_567
    resumed = PartialFile(path, executor)
    assert await resumed.open(resume=True) == 1_234_567
    await resumed.write(data[1_234_567:])
    assert await resumed.finish() == hashlib.sha256(data).hexdigest()
    await resumed.close()


# ----- cache and materialize ---------------------------------------------------------------------


def _cached(tmp_path: Path, data: bytes = b"payload") -> CachedFile:
    cache = ContentCache(tmp_path / "cache")
    cache.ensure()
    part = cache.partial_path("url https://x/fw.bin")
    part.write_bytes(data)
    return cache.commit(part, hashlib.sha256(data).hexdigest(), len(data))


def test_commit_is_content_addressed_read_only_and_deduplicated(tmp_path: Path):
    first = _cached(tmp_path)
    assert first.path.name == hashlib.sha256(b"payload").hexdigest()
    assert first.path.stat().st_mode & 0o777 == 0o400
    cache = ContentCache(tmp_path / "cache")
    part = cache.partial_path("content https://c other-id")
    part.write_bytes(b"payload")
    again = cache.commit(part, first.sha256, 7)
    assert again == first and not part.exists()
    assert cache.blob(first.sha256) == first and cache.blob(first.sha256, size=8) is None


def test_partial_paths_are_inside_the_partial_dir(tmp_path: Path):
    cache = ContentCache(tmp_path)
    p = cache.partial_path("url https://x/../../etc/passwd")
    assert p.parent == tmp_path / "partial" and cache.is_partial(p)
    assert not cache.is_partial(tmp_path / "elsewhere.part")


@pytest.mark.parametrize(
    "name", ["", ".", "..", "../x", "a/b", "a\\b", "/abs", " lead", "nul\0", "bell\a", "x" * 256]
)
def test_unsafe_filenames_refused(tmp_path: Path, name: str):
    assert filename_problem(name) is not None
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(DownloadError, match="refused"):
        materialize(_cached(tmp_path), work, name)
    assert list(work.iterdir()) == []


def test_materialize_never_follows_or_replaces_an_existing_entry(tmp_path: Path):
    cached = _cached(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    outside = tmp_path / "outside"
    (work / "fw.bin").symlink_to(outside)
    with pytest.raises(DownloadError, match="already exists"):
        materialize(cached, work, "fw.bin")
    assert not outside.exists()


def test_materialize_copies_when_a_hard_link_is_impossible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    cached = _cached(tmp_path, b"across devices")

    def no_link(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    work = tmp_path / "work"
    work.mkdir()
    placed = materialize(cached, work, "fw.bin")
    assert placed.read_bytes() == b"across devices"
    assert placed.stat().st_ino != cached.path.stat().st_ino
